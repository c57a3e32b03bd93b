"""Faster forms of the transformer's layers that compute the same function (up to rounding).

:func:`use_fast_layers` swaps them into a :class:`~stylekit.models.transformer.TransformerNet` once,
when it is built; the network's own classes stay the paper's plain modules. Each fast form keeps the
plain layer's children (so parameters and state-dict keys are unchanged: checkpoints and exports do
not change) and replaces only how they run. The forms were measured on a 2-core AVX512-BF16 CPU,
where oneDNN is slow for wide images with few channels and autocast upcasts pads to fp32; tests
compare each against the plain form in float64. They are not scriptable: TorchScript export scripts
the plain network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reflection_pad_backward(grad: torch.Tensor, p: int) -> torch.Tensor:
    """The gradient of ``F.pad(x, (p, p, p, p), mode="reflect")`` with respect to ``x``.

    Folds the mirrored border strips back onto the interior with a few strided adds; 2-5×
    faster on CPU than ATen's scatter kernel, which zero-fills and scatters every element.
    """
    inner = grad[..., p:-p, p:-p].clone()
    h = inner.shape[-2]
    inner[..., 1:p + 1] += grad[..., p:-p, :p].flip(-1)
    inner[..., -p - 1:-1] += grad[..., p:-p, -p:].flip(-1)
    for strip, rows in ((grad[..., :p, :], slice(1, p + 1)), (grad[..., -p:, :], slice(h - p - 1, h - 1))):
        folded = strip[..., p:-p].clone()  # the strip's own corners fold along the width first
        folded[..., 1:p + 1] += strip[..., :p].flip(-1)
        folded[..., -p - 1:-1] += strip[..., -p:].flip(-1)
        inner[..., rows, :] += folded.flip(-2)
    return inner


def replication_pad_backward(grad: torch.Tensor, p: int) -> torch.Tensor:
    """The gradient of ``F.pad(x, (p, p, p, p), mode="replicate")``: border strips summed onto the edges."""
    inner = grad[..., p:-p, p:-p].clone()
    inner[..., 0] += grad[..., p:-p, :p].sum(-1)
    inner[..., -1] += grad[..., p:-p, -p:].sum(-1)
    for strip, row in ((grad[..., :p, :], 0), (grad[..., -p:, :], -1)):
        folded = strip[..., p:-p].sum(-2)
        folded[..., 0] += strip[..., :p].sum((-2, -1))
        folded[..., -1] += strip[..., -p:].sum((-2, -1))
        inner[..., row, :] += folded
    return inner


_PAD_BACKWARD = {"reflect": reflection_pad_backward, "replicate": replication_pad_backward}


class _Pad(torch.autograd.Function):
    """``F.pad`` by ``p`` on every side, outside autocast, with the folding backward passes above.

    Its own backward also sidesteps ATen's ``replication_pad2d_backward``, whose meta kernel
    disagrees with the real one on strides and breaks ``torch.compile``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: int, mode: str) -> torch.Tensor:
        ctx.p, ctx.mode = p, mode
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, (p, p, p, p), mode=mode)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _PAD_BACKWARD[ctx.mode](grad, ctx.p), None, None


class ReflectionPad(nn.ReflectionPad2d):
    """Reflection padding by ``p`` on every side, in its input's precision, with a fast backward.

    Autocast lists ``reflection_pad2d`` as an fp32 op, so in a bf16 run every pad would copy
    the activations up to fp32 and the next conv copy them back down — and the backward
    pass again. Padding only moves values, so skipping the upcast changes nothing
    numerically; the backward is :func:`reflection_pad_backward`. Together they were about
    a quarter of the transformer's CPU time.
    """

    def __init__(self, p: int):
        super().__init__(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p > 0 and min(x.shape[-2:]) > self.p:
            return _Pad.apply(x, self.p, "reflect")
        return F.pad(x, self.padding, "reflect")


def _phase_taps(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """taps[phase, offset, k] = 1 where tap k of a 3-tap kernel applied after ×2 nearest upsampling and
    reflection padding lands on offset 0-2 of the replicate-padded low-resolution input: even outputs see
    (w0, w1 + w2, 0), odd outputs (0, w0 + w1, w2). Built on the device (no host copy, no sync)."""
    phase = torch.arange(2, device=device).view(2, 1, 1)
    offset = torch.arange(3, device=device).view(1, 3, 1)
    k = torch.arange(3, device=device).view(1, 1, 3)
    return (offset == torch.div(phase + k + 1, 2, rounding_mode="floor")).to(dtype)


def _bias_per_phase(bias: torch.Tensor | None) -> torch.Tensor | None:
    """Each output channel's bias repeated for its four phases (views only; no device sync)."""
    return None if bias is None else bias.view(-1, 1).expand(-1, 4).reshape(-1)


def upsample_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv3x3(reflection_pad1(upsample_nearest×2(x)))`` computed at the input's resolution.

    Exactly the same function (up to rounding): reflection-padding a nearest-upsampled map equals
    upsampling the replicate-padded map, so each of the four output phases is a 3×3 conv of
    the padded low-resolution input with tap sums of ``weight``. One conv with 4× the output
    channels at ¼ the pixels, then a pixel shuffle, replaces a wide-image, few-channel conv —
    the slowest shape for oneDNN (about 2.5× faster forward and backward on a CPU) — and the
    upsampled copy is never made. The parameters are the ordinary conv's, so checkpoints are
    unchanged.
    """
    cout, cin = weight.shape[:2]
    taps = _phase_taps(weight.device, weight.dtype)
    phases = torch.einsum("pak,oikl,qbl->opqiab", taps, weight, taps).reshape(4 * cout, cin, 3, 3)
    padded = _Pad.apply(x, 1, "replicate")  # in the input's precision (autocast would upcast it)
    out = F.conv2d(padded, phases, _bias_per_phase(bias))
    return F.pixel_shuffle(out, 2)


def conv_space_to_depth(padded: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(padded, weight, bias)`` (stride 1, even-sized ``padded``) computed on 2×2 pixel blocks.

    The image is folded into 4× the channels at ¼ the pixels and the k×k kernel into one of
    size ⌈(k+1)/2⌉ over the folded channels, each of the four output phases a channel group.
    For the transformer's last layer (9×9, 32 → 3 channels at full resolution) this turns
    oneDNN's slowest shape into a 128 → 12-channel 5×5 conv: 2× faster forward+backward on
    a CPU for ~25% more multiply-adds. Same function up to rounding; same parameters.
    """
    cout, cin, k, _ = weight.shape
    half = (k + 2) // 2  # taps of the folded kernel
    # select[phase, block offset r, folded tap A, original tap a] = 1 where a = 2A + r - phase
    a = torch.arange(k, device=weight.device)
    phase = torch.arange(2, device=weight.device).view(2, 1, 1, 1)
    r = torch.arange(2, device=weight.device).view(1, 2, 1, 1)
    tap = torch.arange(half, device=weight.device).view(1, 1, half, 1)
    select = (a.view(1, 1, 1, k) == 2 * tap + r - phase).to(weight.dtype)
    folded = torch.einsum("prAa,qsBb,ocab->opqcrsAB", select, select, weight).reshape(4 * cout, 4 * cin, half, half)
    out = F.conv2d(F.pixel_unshuffle(padded, 2), folded, _bias_per_phase(bias))
    return F.pixel_shuffle(out, 2)


class UpsampleConv(nn.Sequential):
    """``[×2 nearest upsampling, reflection pad 1, 3×3 conv, *rest]`` with the first three run as one
    :func:`upsample_conv3x3` at the input's resolution, then ``rest`` (norm, ReLU) as listed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self[2]
        x = upsample_conv3x3(x, conv.weight, conv.bias)
        for layer in list(self)[3:]:
            x = layer(x)
        return x


class SpaceToDepthConv(nn.Sequential):
    """``[pad, stride-1 conv]`` with the conv run as :func:`conv_space_to_depth` when the padded input
    has even height and width (otherwise as the plain conv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad, conv = self
        x = pad(x)
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            return conv(x)
        return conv_space_to_depth(x, conv.weight, conv.bias)


def use_fast_layers(net: nn.Module) -> nn.Module:
    """Swap the fast forms into a transformer, in place, and return it; idempotent.

    Every reflection pad becomes :class:`ReflectionPad`; each nearest-upsampling stage
    (``net.up[i]`` = upsample, pad, 3×3 conv, norm, ReLU) an :class:`UpsampleConv`; the last conv
    (``net.out`` = pad, 9×9 conv, 32 → 3 channels at full resolution) a :class:`SpaceToDepthConv`.
    The swapped-in modules hold the same children, so parameters and state-dict keys are unchanged.
    """
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReflectionPad2d and len(set(child.padding)) == 1:
                setattr(parent, name, ReflectionPad(child.padding[0]))
    for i, stage in enumerate(net.up):
        if isinstance(stage[0], nn.Upsample) and not isinstance(stage, UpsampleConv):
            net.up[i] = UpsampleConv(*stage)
    if not isinstance(net.out, SpaceToDepthConv):
        net.out = SpaceToDepthConv(*net.out)
    return net
