"""Depth networks' published input sizing, as differentiable tensor operations.

:class:`Resize` reproduces ``Resize.get_size`` of isl-org/MiDaS ``midas/transforms.py`` (the same class
is copied into DepthAnything/Depth-Anything-V2 ``depth_anything_v2/util/transform.py``) with
``keep_aspect_ratio=True``, and adds ``squash`` (both sides set, aspect ignored, as the hourglass
port's ``test_on_one_image.py`` does). Interpolation runs on tensors with ``F.interpolate``, so a
loss on the network's output backpropagates to the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

Method = Literal["upper_bound", "lower_bound", "minimal", "squash"]
Interpolation = Literal["bicubic", "bilinear", "nearest"]


@dataclass(frozen=True)
class Resize:
    """How a network's authors size its input, and how its map goes back to the image size.

    ``height``/``width``: the target (MiDaS's ``net_h``/``net_w``); ``method``: MiDaS's ``resize_method``
    ('upper_bound': both sides fit the target; 'lower_bound': both sides cover it; 'minimal': the
    side whose scale is closer to 1 sets the scale) or 'squash'; ``multiple``: ``ensure_multiple_of``.
    ``interpolation``/``antialias``: the resampling of the authors' script (OpenCV ``INTER_CUBIC`` is
    torch's bicubic without antialiasing, Keys a = −0.75; PIL's ``BICUBIC`` is torch's bicubic with
    ``antialias=True``, a = −0.5, up- and downscaling alike). ``output_*``: how their script resizes the map back. ``source``: the
    authors' file(s) that define all this.
    """

    height: int
    width: int
    method: Method
    multiple: int = 1
    interpolation: Interpolation = "bicubic"
    antialias: bool = False
    output_interpolation: Interpolation = "bicubic"
    output_align_corners: bool = False
    output_antialias: bool = False
    source: str = ""

    def at(self, height: int | None) -> "Resize":
        """The same rule for another target height (the width keeps the target's ratio)."""
        if height is None or height == self.height:
            return self
        return replace(self, height=height, width=max(1, round(height * self.width / self.height)))

    def _constrain(self, x: float, min_val: int = 0, max_val: int | None = None) -> int:
        """MiDaS ``constrain_to_multiple_of``: nearest multiple, floored under ``max_val``, ceiled over ``min_val``.

        Python's ``round`` halves to even like ``np.round``. One difference: never 0 (MiDaS would
        return 0 for a side under half a multiple, e.g. a 10×1000 image at 256, and then fail).
        """
        m = self.multiple
        y = round(x / m) * m
        if max_val is not None and y > max_val:
            y = math.floor(x / m) * m
        if y < min_val:
            y = math.ceil(x / m) * m
        return max(m, int(y))

    def size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) fed to the network for an ``h``×``w`` image."""
        if self.method == "squash":
            return self._constrain(self.height), self._constrain(self.width)
        scale_h, scale_w = self.height / h, self.width / w
        if self.method == "lower_bound":
            scale = max(scale_h, scale_w)
        elif self.method == "upper_bound":
            scale = min(scale_h, scale_w)
        else:  # minimal: "scale as little as possible"
            scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
        if self.method == "lower_bound":
            return self._constrain(scale * h, min_val=self.height), self._constrain(scale * w, min_val=self.width)
        if self.method == "upper_bound":
            return self._constrain(scale * h, max_val=self.height), self._constrain(scale * w, max_val=self.width)
        return self._constrain(scale * h), self._constrain(scale * w)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (N×C×H×W) resized to :meth:`size`, as the authors' script resamples."""
        size = self.size(*images.shape[-2:])
        return resample(images, size, self.interpolation, self.antialias)

    def restore(self, out: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The network's map brought back to the image ``size`` as the authors' script does."""
        return resample(out, size, self.output_interpolation, self.output_antialias, self.output_align_corners)


def resample(x: torch.Tensor, size: tuple[int, int], mode: Interpolation, antialias: bool = False,
             align_corners: bool = False) -> torch.Tensor:
    """``F.interpolate`` with the conventions above; a no-op when the size already matches.

    Half-precision input (training under bf16/fp16 autocast) is resampled in float32, which every kernel
    supports (antialiased bicubic has no bf16 CPU kernel), and returned in its own dtype.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if mode == "nearest":
        out = F.interpolate(x, size=size, mode="nearest")
    else:
        out = F.interpolate(x, size=size, mode=mode, align_corners=align_corners, antialias=antialias)
    return out.to(dtype)
