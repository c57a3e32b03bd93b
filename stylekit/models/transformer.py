"""Johnson et al. 2016's image transformation network (supplementary material, Table 1).

9×9 conv → two stride-2 3×3 convs → 5 residual blocks → two ×2 upsampling stages
→ 9×9 conv → scaled tanh to [0, 255]. Reflection padding keeps it fully
convolutional: any input size works, and the output has the input's size.

The classes below are the paper's network, built from plain torch modules. A network is
built with :func:`~stylekit.models.fast_layers.use_fast_layers` applied (``fast=True``, the
default): the pads, the upsampling stages and the last conv then run in reformulated but
equal forms with the same parameters and state-dict keys. TorchScript export builds the
plain network (``fast=False``) and loads the same state dict.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..components import ComponentOptions
from .base import TransformerNetwork
from .fast_layers import use_fast_layers


class TransformerOptions(ComponentOptions):
    norm: Literal["batch", "instance", "instance_floor"] = Field(
        "instance", description="'batch' as in Johnson's paper, 'instance' as in later practice (Ulyanov et al.); "
                                "'instance_floor': instance norm whose variance has a floor, the channel's typical "
                                "variance over training images (no bright blobs in flat regions).")
    upsample: Literal["deconv", "nearest"] = Field(
        "deconv", description="'deconv': fractionally-strided conv (paper); 'nearest': upsample + conv (no checkerboard).")
    channels: int = Field(32, ge=4, description="Width of the first conv; later stages use 2× and 4× (paper: 32; "
                                                "16 is the half width of jcjohnson's instance-norm models).")
    residual_blocks: int = Field(5, ge=0, description="Number of residual blocks (paper: 5).")


class _FlooredInstanceNorm(torch.autograd.Function):
    """γ·(x − mean_hw x)·(var_hw x + floor + eps)^-½ + β per image and channel, fused.

    The gradient has batch norm's training form with the statistics above in its place: dx = γ·r·(g − mean g −
    x̂·mean(g·x̂)), r = (var + floor + eps)^-½. So the forward is batch norm's inference kernel on the image ×
    channel planes given those statistics, and the backward is batch norm's training backward handed the same
    mean and r: one fused pass each, where autograd through the formula took a quarter of a CPU training step.
    Statistics are float32 whatever the input's dtype. Returns y and the variance (no gradient).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, floor, eps: float):
        n, c, h, w = x.shape
        planes = x.reshape(1, n * c, h, w)
        wide = x.to(torch.promote_types(x.dtype, torch.float32)).reshape(n * c, h * w)
        mean = wide.mean(1)
        var = ((wide * wide).mean(1) - mean * mean).clamp_min(0)
        shifted_var = var + floor.to(var.dtype).repeat(n)
        gamma, beta = weight.to(var.dtype).repeat(n), bias.to(var.dtype).repeat(n)
        y = torch.batch_norm(planes, gamma, beta, mean, shifted_var, False, 0.0, eps, False)
        ctx.save_for_backward(planes, gamma, mean, torch.rsqrt(shifted_var + eps))
        ctx.eps, ctx.shape = eps, (n, c)
        var = var.view(n, c)
        ctx.mark_non_differentiable(var)
        return y, var  # y as 1 × (N·C) × H × W planes: a view made here could not be written in place later

    @staticmethod
    def backward(ctx, grad, _grad_var):
        planes, gamma, mean, r = ctx.saved_tensors
        n, c = ctx.shape
        dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(), planes, gamma, None, None, mean, r, True, ctx.eps, [True, True, True])
        return dx.view(n, c, *planes.shape[-2:]), dgamma.view(n, c).sum(0), dbeta.view(n, c).sum(0), None, None


class FlooredInstanceNorm(nn.Module):
    """Instance norm whose variance cannot fall below the channel's typical variance over training images.

    Plain instance norm divides each feature map by its own spread in this image. Where an image is flat
    (sky, a wall) that spread is tiny and the division amplifies whatever faint structure is there; a
    network trained through it also learns to plant one strong local peak that takes the spread, so it can
    scale the rest: after the decoder and the tanh, a round white blob (StyleGAN2's "droplet", Karras et
    al. 2020 §2; the bright spots of Johnson-style networks in flat regions). Here

        y = γ · (x − mean_hw x) / sqrt(var_hw x + floor + eps) + β,   floor = running mean of var_hw x

    so a feature map far quieter than usual stays quiet, and a peak no longer buys the rest of the map
    a new scale. ``floor`` is tracked during training like batch norm's running variance and used as
    stored at inference (buffer ``running_var``); a typical image is normalized as by instance norm with
    its spread counted twice (γ absorbs the constant √2).
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.01):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not torch.jit.is_scripting():
            y, var = _FlooredInstanceNorm.apply(x, self.weight, self.bias, self.running_var, self.eps)
            with torch.no_grad():
                self.running_var.lerp_(var.mean(0), self.momentum)
            return y.view(x.shape)
        # inference (and export): plain ops, two reductions and one fused multiply-add
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = wide.mean((-2, -1), keepdim=True)
        var = ((wide * wide).mean((-2, -1), keepdim=True) - mean * mean).clamp_min(0)
        scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.running_var.view(1, -1, 1, 1) + self.eps)
        shift = self.bias.view(1, -1, 1, 1) - mean * scale
        return torch.addcmul(shift, wide, scale).to(x.dtype)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance_floor":
        return FlooredInstanceNorm(channels)
    return nn.InstanceNorm2d(channels, affine=True)


class ConvLayer(nn.Sequential):
    """Reflection pad → conv → norm → ReLU (norm and ReLU optional)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: str | None = "instance",
                 relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(_norm(norm, cout))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3, norm=norm),
                                  ConvLayer(channels, channels, 3, norm=norm, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleLayer(nn.Sequential):
    """×2 upsampling: a fractionally-strided conv (paper) or nearest upsampling + conv, then norm → ReLU."""

    def __init__(self, cin: int, cout: int, mode: str, norm: str):
        if mode == "deconv":
            layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
        else:
            layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        super().__init__(*layers, _norm(norm, cout), nn.ReLU(inplace=True))


class TransformerNet(TransformerNetwork):
    """Johnson et al. 2016's network (the default); `channels: 16` is the half width of jcjohnson's models.

    Input and output: RGB in [0, 255], N×3×H×W. jcjohnson/fast-neural-style's README ("Models with instance
    normalization") trains its released instance-norm models at half this width, "smaller and faster without
    sacrificing model quality". ``fast=False`` keeps the plain modules (for TorchScript, or to read the
    network as listed); the default swaps in the equal-but-faster forms once, here
    (:mod:`stylekit.models.fast_layers`).
    """

    name = "johnson"
    Options = TransformerOptions
    size_limits = {"channels": 1024, "residual_blocks": 64}

    def __init__(self, options: TransformerOptions | dict | None = None, *, fast: bool = True):
        super().__init__()
        self.options = o = self.Options.model_validate(options or {})
        c = o.channels
        self.down = nn.Sequential(ConvLayer(3, c, 9, norm=o.norm), ConvLayer(c, 2 * c, 3, 2, norm=o.norm),
                                  ConvLayer(2 * c, 4 * c, 3, 2, norm=o.norm))
        self.residual = nn.Sequential(*[self.residual_block(4 * c) for _ in range(o.residual_blocks)])
        self.up = nn.Sequential(UpsampleLayer(4 * c, 2 * c, o.upsample, o.norm),
                                UpsampleLayer(2 * c, c, o.upsample, o.norm))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(c, 3, 9))  # no norm, no ReLU
        if fast:
            use_fast_layers(self)

    def residual_block(self, channels: int) -> nn.Module:
        """One of the residual blocks (the paper's: two 3×3 convs); variants build their own."""
        return ResidualBlock(channels, self.options.norm)

    def plain(self) -> TransformerNet:
        """This network in the paper's plain modules (no fast layers), with the same weights."""
        net = type(self)(self.options, fast=False)
        net.load_state_dict(self.state_dict())
        return net.to(next(self.parameters()).device).train(self.training)

    def export_body(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(self.residual(self.down(x))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        # Two stride-2 stages: pad to a multiple of 4 so the output has exactly the input's size.
        pad_h, pad_w = (-h) % 4, (-w) % 4
        x = images / 127.5 - 1.0
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > 4 else "replicate")
        y = self.export_body(x)[..., :h, :w]
        return 127.5 * (torch.tanh(y) + 1.0)  # scaled tanh: [0, 255]
