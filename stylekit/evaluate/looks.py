"""What a stylized image looks like, judged without the networks training uses: style strength through
ImageNet EfficientNet-Lite texture statistics, and the instance-norm "bright blob" artifact.

The texture judges answer "how close is ŷ to the painting?" with Gram matrices of a network no stylekit
recipe trains its style through (the loss backbones are VGG-16s), so a model cannot score well by having
fitted the judge. Two of them, so a verdict does not rest on one network: Lite0 (the ``effnet_depth_lite``
φ1 holds the same encoder, which the report says when a model was trained through it) and Lite2, whose
weights no shipped component holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from .. import metrics as base
from ..features import NetworkSpec
from ..functional import gram_matrix
from ..metrics import Column, MetricContext, MetricOptions, MetricUnavailable
from . import functional as Fm

#: EfficientNet-Lite stages at strides 2, 4, 8 and 16 (timm ``features_only`` levels 0–3)
TEXTURE_LAYERS = ("blocks.0", "blocks.1", "blocks.2", "blocks.4")


class TextureOptions(MetricOptions):
    width: int = Field(512, ge=32, description="ŷ is resized to this width before the judge looks (Johnson's "
                                               "released outputs are 512 px wide).")
    style_width: int = Field(512, ge=32, description="The painting is resized to this width, so its strokes are "
                                                     "compared at the scale ŷ shows them.")
    layers: list[str] = Field(default_factory=lambda: list(TEXTURE_LAYERS), min_length=1,
                              description="Network stages whose Gram matrices are compared.")


class TextureDistance(base.Metric):
    """Base of the texture judges: Σ_layers mean(G(ŷ) − G(s))² / mean(G(s)²) on an ImageNet network."""

    Options = TextureOptions
    judge = True
    #: timm model name of the judging network (subclasses set it)
    model = ""

    @classmethod
    def network_spec(cls) -> NetworkSpec:
        return NetworkSpec.of("backbone", "timm", {"model": cls.model})

    def prepare(self, context: MetricContext) -> None:
        super().prepare(context)
        style = context.style_original if context.style_original is not None else context.style
        if style is None:
            raise MetricUnavailable("no style image: pass --style IMAGE, or evaluate a checkpoint whose meta.json "
                                    "names its recipe's style image")
        self.networks.add_role(self.name, self.network_spec())
        grams = self._grams(_to_width(style.float(), self.options.style_width))
        self.targets = grams
        self.scales = {k: g.pow(2).mean().clamp_min(1e-30) for k, g in grams.items()}

    def _grams(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        net = self.networks.get(self.name)
        with torch.no_grad():
            feats = net(images.to(self.networks.device), list(self.options.layers))
        return {k: gram_matrix(v.float().cpu()) for k, v in feats.items()}

    def compute(self, content, stylized, **context):
        grams = self._grams(_to_width(stylized.float(), self.options.width))
        total = sum((grams[k] - self.targets[k]).pow(2).mean((1, 2)) / self.scales[k] for k in self.options.layers)
        return {self.name: total}


class TextureLite0(TextureDistance):
    """Texture distance to the painting through ImageNet EfficientNet-Lite0 (the quality issue's judge)."""

    name = "texture_lite0"
    title = "Texture distance to the style (EfficientNet-Lite0)"
    model = "tf_efficientnet_lite0"
    uses = ("texture_lite0",)
    columns = (Column("texture_lite0", "texture distance (Lite0)",
                      "Σ_l mean(G_l(ŷ) − G_l(s))² / mean(G_l(s)²), G = FFᵀ/(C·H·W) at EfficientNet-Lite0 blocks "
                      "0, 1, 2, 4; ŷ and the style image s resized to 512 px wide", "EfficientNet-Lite0 (ImageNet)",
                      "[0, ∞) (the photo itself: ~5)", "lower"),)


class TextureLite2(TextureDistance):
    """Texture distance to the painting through ImageNet EfficientNet-Lite2 (weights no stylekit network holds)."""

    name = "texture_lite2"
    title = "Texture distance to the style (EfficientNet-Lite2)"
    model = "tf_efficientnet_lite2"
    uses = ("texture_lite2",)
    columns = (Column("texture_lite2", "texture distance (Lite2)",
                      "as texture_lite0, through EfficientNet-Lite2 (blocks 0, 1, 2, 4)", "EfficientNet-Lite2 (ImageNet)",
                      "[0, ∞)", "lower"),)


class TextureGabor(base.Metric):
    """Texture distance to the painting through a fixed Gabor filter bank (no network, no training data)."""

    name = "texture_gabor"
    title = "Texture distance to the style (Gabor pyramid, no network)"
    Options = TextureOptions
    columns = (Column("texture_gabor", "texture distance (Gabor)",
                      "Σ_levels mean(K(ŷ) − K(s))² / mean(K(s)²), K = covariance matrix of complex-Gabor magnitudes "
                      "(6 orientations, 4-px wavelength) and RGB at 4 pyramid levels (wavelengths 4–32 px); ŷ and "
                      "s resized to 512 px wide", "none (classical)", "[0, ∞)", "lower"),)

    def prepare(self, context: MetricContext) -> None:
        super().prepare(context)
        style = context.style_original if context.style_original is not None else context.style
        if style is None:
            raise MetricUnavailable("no style image: pass --style IMAGE, or evaluate a checkpoint whose meta.json "
                                    "names its recipe's style image")
        self.targets = self._grams(_to_width(style.float(), self.options.style_width))
        self.scales = [g.pow(2).mean().clamp_min(1e-30) for g in self.targets]

    @staticmethod
    def _grams(images: torch.Tensor) -> list[torch.Tensor]:
        """Covariances, not raw Gram matrices: uncentered, the colors' means would outweigh every texture term."""
        return [gram_matrix(f - f.mean((-2, -1), keepdim=True)) for f in Fm.gabor_texture_features(images.cpu())]

    def compute(self, content, stylized, **context):
        grams = self._grams(_to_width(stylized.float(), self.options.width))
        return {self.name: sum((g - t).pow(2).mean((1, 2)) / s for g, t, s in zip(grams, self.targets, self.scales))}


class BlobOptions(MetricOptions):
    level: float = Field(235.0, ge=0, le=255, description="Darkest channel at or above which a pixel is blown out.")
    flat: float = Field(3.0, ge=0, description="Largest luma standard deviation (5×5 box) of a flat pixel.")
    flat_share: float = Field(0.3, ge=0, le=1, description="Smallest share of a spot's pixels that are flat.")
    min_area: float = Field(2e-4, ge=0, le=1, description="Smallest spot, as a fraction of the image.")
    max_area: float = Field(0.05, ge=0, le=1, description="Largest spot, as a fraction of the image.")


class BrightBlobs(base.Metric):
    """Isolated, flat, blown-out white spots that the content does not have (the instance-norm droplet)."""

    name = "blobs"
    title = "Bright blobs"
    Options = BlobOptions
    columns = (
        Column("blob_count", "bright blobs", "connected spots of ŷ whose darkest channel is ≥ 235, blown out nowhere "
               "in x (±2 px), covering 0.02 %–5 % of the image, ≥ 30 % of them flat (luma σ ≤ 3 in 5×5)",
               "none (classical)", "[0, ∞) per image (photos and Johnson's released outputs: 0)", "lower"),
        Column("blob_area", "bright-blob area", "fraction of the image those spots cover", "none (classical)",
               "[0, 1]", "lower"),
    )

    def compute(self, content, stylized, **context):
        o = self.options
        found = Fm.bright_blobs(content, stylized, level=o.level, flat=o.flat, min_area=o.min_area,
                                max_area=o.max_area, flat_share=o.flat_share)
        return {"blob_count": found["count"], "blob_area": found["area"]}


def _to_width(images: torch.Tensor, width: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    if w == width:
        return images
    return F.interpolate(images, size=(max(1, round(h * width / w)), width), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 255)


#: the metrics of this module, in report order
LOOKS_METRICS: tuple[type[base.Metric], ...] = (TextureLite0, TextureLite2, TextureGabor, BrightBlobs)
