"""The pure tensor maths of stylekit: no networks, no registry, no options — each function is a formula.

Loss terms (:mod:`stylekit.losses`), depth maps (:mod:`stylekit.depth.maps`), backbones and evaluation
(:mod:`stylekit.evaluate`) import from here, and this module imports nothing from stylekit, so it sits
at the bottom of the import graph. Docstrings follow kornia's functional losses (``Args:``, ``Shape:``).
"""

from __future__ import annotations

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "align_scale_shift", "feature_reconstruction", "gram_matrix",
           "histogram_remap", "normalize_min_max", "quantiles", "total_variation"]

#: Per-channel RGB mean and standard deviation of ImageNet on the [0, 1] scale (torchvision's, timm's default).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -- loss maths ---------------------------------------------------------------------------------------------
class _SelfProduct(torch.autograd.Function):
    """``f fᵀ`` (or ``fᵀ f``) with a one-product backward, ``(dG + dGᵀ) f``.

    Plain autograd sees ``f`` used twice and pays two batched products plus a full-size
    add of the two gradients — for relu1_2 at 256 px that add alone streams 64 MB.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, features_last: bool) -> torch.Tensor:
        ctx.save_for_backward(f)
        ctx.features_last = features_last
        return torch.bmm(f.transpose(1, 2), f) if features_last else torch.bmm(f, f.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (f,) = ctx.saved_tensors
        symmetric = (grad + grad.transpose(1, 2)).to(f.dtype)
        return (torch.bmm(f, symmetric) if ctx.features_last else torch.bmm(symmetric, f)), None


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    r"""Gram matrix :math:`G = F F^\top / (C·H·W)` of each item (Johnson et al. 2016 eq. 3), in float32.

    The product runs in the features' own precision: for bf16/fp16 features the matrix
    multiply accumulates in fp32 and rounds each entry once (relative error ≤ 2⁻⁹ for
    bf16), instead of first copying the whole feature map to fp32 — on a CPU that copy
    and an fp32 product cost 5-15× more. NHWC (channels_last) maps are read as N×HW×C
    without a copy. The backward pass is one batched product, ``(dG + dGᵀ) F``.

    Args:
        features: feature maps, any floating dtype and memory format.

    Returns:
        the Gram matrices, float32.

    Shape:
        - features: :math:`(N, C, H, W)`
        - output: :math:`(N, C, C)`
    """
    n, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        g = _SelfProduct.apply(features.permute(0, 2, 3, 1).reshape(n, h * w, c), True)  # a view: no copy
    else:
        g = _SelfProduct.apply(features.reshape(n, c, h * w), False)
    return g.float() / (c * h * w)


class _MeanSquaredDifference(torch.autograd.Function):
    """Per-item mean of ``(a − b)²``; forward reduces in fp32, backward is one pass.

    Autograd of the plain expression would keep an fp32 copy of the difference and spend
    three full-size passes on the backward; this keeps only ``a − b`` in its own precision.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a - b
        ctx.save_for_backward(diff)
        dims = tuple(range(1, diff.dim()))
        accumulate = torch.promote_types(diff.dtype, torch.float32)
        norm = torch.linalg.vector_norm(diff, dim=dims, dtype=accumulate)
        return (norm.square() / diff[0].numel()).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (diff,) = ctx.saved_tensors
        scale = (grad * (2.0 / diff[0].numel())).view(-1, *[1] * (diff.dim() - 1))
        grad_a = diff * scale.to(diff.dtype)
        return grad_a, (-grad_a if ctx.needs_input_grad[1] else None)


def feature_reconstruction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Feature reconstruction loss :math:`\|a - b\|^2 / (C·H·W)` of each item (Johnson et al. 2016 eq. 2).

    The difference is taken in the features' own precision (exact but for one rounding of
    each entry) and squared and summed in float32, without a full-size fp32 copy.

    Args:
        a: features of the output image (gradient flows into it, and into ``b`` if it needs one).
        b: features of the target image, same shape.

    Returns:
        one float32 value per item.

    Shape:
        - a, b: :math:`(N, *)` (a 1-d input is compared element-wise)
        - output: :math:`(N,)`
    """
    if a.dim() < 2:
        return (a - b).float().pow(2)
    if a.dtype != b.dtype:
        a, b = a.float(), b.float()
    return _MeanSquaredDifference.apply(a, b)


def quantiles(features: torch.Tensor, count: int = 1024) -> torch.Tensor:
    r"""Each channel's distribution as ``count`` evenly spaced quantiles (the midpoints (k + ½)/count).

    Args:
        features: feature maps of one image or several (their values pooled per channel).
        count: how many quantiles are kept (fewer than the values: a summary of the histogram).

    Shape:
        - features: :math:`(N, C, *)`
        - output: :math:`(C, count)`, ascending along the last dimension
    """
    values = features.detach().float().transpose(0, 1).reshape(features.shape[1], -1).sort(-1).values
    return _at_fractions(values, count)


def _at_fractions(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """Linear interpolation of sorted rows (…, K) at the fractions (k + ½)/count, k = 0 … count − 1."""
    k = sorted_values.shape[-1]
    position = ((torch.arange(count, device=sorted_values.device, dtype=torch.float32) + 0.5) / count * k - 0.5)
    position = position.clamp(0, k - 1)
    lo = position.floor().long()
    hi = (lo + 1).clamp(max=k - 1)
    frac = position - lo
    return sorted_values[..., lo] * (1 - frac) + sorted_values[..., hi] * frac


def histogram_remap(features: torch.Tensor, target_quantiles: torch.Tensor) -> torch.Tensor:
    r"""R(O) of Risser, Wilmot & Barnes 2017 (§4.1): each channel of each item remapped to the target's histogram.

    Every value is replaced by the target quantile at its own rank (its value sorted among the channel's
    values in this item): the exact one-dimensional optimal-transport map, by sorting as in Heitz et al.
    2021's sliced Wasserstein loss, where Risser et al. match binned histograms. Order is kept: the largest
    activation stays the largest, with the target's value there. No gradient (the loss compares O with R(O)).

    Args:
        features: O, the output image's feature maps.
        target_quantiles: the target's :func:`quantiles`, one row per channel; or one set per item.

    Shape:
        - features: :math:`(N, C, *)`
        - target_quantiles: :math:`(C, Q)`, :math:`(1, C, Q)` or :math:`(N, C, Q)`
        - output: like ``features``
    """
    n, c = features.shape[:2]
    flat = features.detach().float().reshape(n, c, -1)
    order = flat.argsort(-1)
    targets = target_quantiles.float().to(flat.device).expand(n, c, -1)
    at_ranks = _at_fractions(targets, flat.shape[-1])  # the target value for rank 0, 1, … of each item's channel
    return torch.empty_like(flat).scatter_(-1, order, at_ranks).view(features.shape)


def total_variation(images: torch.Tensor, power: int = 2) -> torch.Tensor:
    r"""Total variation :math:`\sum |x_{i+1,j} - x_{i,j}|^p + |x_{i,j+1} - x_{i,j}|^p` of each item.

    Summed over channels and pixels, in float32 (Johnson et al. 2016 §3; Mahendran & Vedaldi 2015).

    Args:
        images: a batch of images (any scale; stylekit's are 0–255).
        power: 2 for squared differences (Johnson's code), 1 for anisotropic L1 TV.

    Returns:
        one float32 value per item.

    Shape:
        - images: :math:`(N, C, H, W)`
        - output: :math:`(N,)`
    """
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).float().abs().pow(power)
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).float().abs().pow(power)
    return dy.flatten(1).sum(1) + dx.flatten(1).sum(1)


# -- maps (depth, saliency) -----------------------------------------------------------------------------------
def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Per item, :math:`s·\text{pred} + t` with :math:`(s, t)` the least-squares fit to ``target`` over ``mask``.

    Relative depth networks are right only up to scale and shift (MiDaS, Ranftl et al. 2020 §5), so their
    maps are compared after this alignment; an affine transform of the target is recovered exactly. A
    constant ``pred`` (no scale can be fitted) aligns to the mean of ``target``. Differentiable in ``pred``
    (through :math:`s` and :math:`t` too); computed in the inputs' dtype.

    Args:
        pred: the maps to align.
        target: the maps to align to, same shape.
        mask: where pixels count (True/1), broadcastable to ``target``; None counts every pixel.

    Returns:
        the aligned maps.

    Shape:
        - pred, target: :math:`(N, *)`, e.g. :math:`(N, 1, H, W)`
        - mask: broadcastable to :math:`(N, *)`
        - output: same as ``pred``
    """
    m = torch.ones_like(target) if mask is None else mask.to(target.dtype).expand_as(target)
    dims = tuple(range(1, target.dim()))
    count = m.sum(dims, keepdim=True).clamp_min(1)
    mean_p = (pred * m).sum(dims, keepdim=True) / count
    mean_t = (target * m).sum(dims, keepdim=True) / count
    centered = pred - mean_p
    cov = (centered * (target - mean_t) * m).sum(dims, keepdim=True)
    var = (centered ** 2 * m).sum(dims, keepdim=True)
    flat = var <= 1e-12 * (pred ** 2 * m).sum(dims, keepdim=True)  # constant up to rounding
    scale = torch.where(flat, torch.zeros_like(var), cov / torch.where(flat, torch.ones_like(var), var))
    return scale * pred + (mean_t - scale * mean_p)


def normalize_min_max(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Min–max normalization of each item to [0, 1]: :math:`(x - \min x) / \max(\max x - \min x, \epsilon)`.

    A flat map (range below ``eps``) becomes 0.

    Args:
        x: a batch of maps.
        eps: the smallest range divided by.

    Returns:
        the normalized maps, same dtype.

    Shape:
        - x: :math:`(N, *)`
        - output: same as ``x``
    """
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)
