"""A differentiable Retinex-style intrinsic decomposition: image = albedo × shading.

Method (Land & McCann's Retinex assumption, single-scale, in the log domain):

1. luminance ``L = 0.299 R + 0.587 G + 0.114 B`` (0–255) and ``log(L + eps)``;
2. log-shading = a wide Gaussian blur of the log-luminance: illumination varies slowly,
   reflectance changes are sharp, so the low-pass part is taken as shading
   (``S = exp(blur(log L))``, the local geometric mean of the luminance, a gray 0–255 map);
3. albedo = image / shading, scaled so that a surface at the local mean brightness sits at
   ``gain`` (128) and clamped to [0, 255], i.e. a color image the backbones can read.

Everything is a fixed convolution plus pointwise ops, so gradients flow to the image.

Limits: this is not a learned intrinsic-image network. Shading is gray (one colored light is
folded into the albedo); large uniform albedo regions are attributed to shading and shadow
edges sharper than ``sigma`` to albedo; the blur's width is a fraction of the image size, so
the split depends on scale. It is a cheap, dependency-free stand-in whose behavior is easy to
reason about; a learned decomposition can replace :func:`decompose` behind the same terms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

LUMA = (0.299, 0.587, 0.114)


class IntrinsicOptions(BaseModel):
    """How images are split into shading and albedo (shared by every term and the metric)."""

    model_config = ConfigDict(extra="forbid")

    sigma: float = Field(0.06, gt=0, le=1, description="Width of the shading blur as a fraction of the image's "
                                                         "shorter side (0.06: ~15 px at 256 px).")
    eps: float = Field(1.0, gt=0, description="Added to the luminance (0–255 scale) before the log, so black "
                                             "pixels stay finite.")
    gain: float = Field(128.0, gt=0, description="Albedo value of a surface at the local mean brightness.")


def log_luminance(images: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """N×3×H×W RGB in [0, 255] → N×1×H×W ``log(L + eps)`` in float32."""
    weights = images.new_tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    return torch.log((images.float() * weights).sum(1, keepdim=True).clamp_min(0) + eps)


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur with reflection padding (the radius is capped to fit the image)."""
    h, w = x.shape[-2:]
    out = x
    for dim, length in ((-1, w), (-2, h)):
        radius = max(0, min(int(math.ceil(3 * sigma_px)), length - 1))
        if radius == 0:
            continue
        t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (t / sigma_px) ** 2)
        kernel = (kernel / kernel.sum()).to(x.dtype)
        c = out.shape[1]
        if dim == -1:
            out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"),
                           kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        else:
            out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"),
                           kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out


def log_shading(images: torch.Tensor, options: IntrinsicOptions | None = None) -> torch.Tensor:
    """N×1×H×W log-shading: the blurred log-luminance."""
    options = options or IntrinsicOptions()
    sigma_px = max(options.sigma * min(images.shape[-2:]), 0.5)
    return gaussian_blur(log_luminance(images, options.eps), sigma_px)


def shading(images: torch.Tensor, options: IntrinsicOptions | None = None) -> torch.Tensor:
    """N×1×H×W gray shading on the 0–255 luminance scale."""
    options = options or IntrinsicOptions()
    return torch.exp(log_shading(images, options)) - options.eps


def albedo(images: torch.Tensor, options: IntrinsicOptions | None = None,
           log_s: torch.Tensor | None = None) -> torch.Tensor:
    """N×3×H×W albedo, RGB in [0, 255] (see the module docstring for the scaling)."""
    options = options or IntrinsicOptions()
    if log_s is None:
        log_s = log_shading(images, options)
    return (options.gain * (images.float() + options.eps) / torch.exp(log_s)).clamp(0.0, 255.0)


def decompose(images: torch.Tensor, options: IntrinsicOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(albedo, shading)``: N×3×H×W and N×1×H×W, both on a 0–255 scale."""
    options = options or IntrinsicOptions()
    log_s = log_shading(images, options)
    return albedo(images, options, log_s), torch.exp(log_s) - options.eps
