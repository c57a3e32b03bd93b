"""Working with relative depth maps: alignment, normalisation, pictures."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def least_squares_align(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per image, the scale-and-shift ``s·pred + t`` closest to ``target`` (least squares over ``mask``).

    Relative depth networks are right only up to such a transform, so comparisons
    between their maps are made after it. Differentiable in ``pred`` (through s and t too).
    Shapes: N×1×H×W (or any N×…); ``mask`` broadcastable, True where pixels count.
    """
    m = torch.ones_like(target) if mask is None else mask.to(target.dtype).expand_as(target)
    dims = tuple(range(1, target.dim()))
    n = m.sum(dims, keepdim=True).clamp_min(1)
    mp = (pred * m).sum(dims, keepdim=True) / n
    mt = (target * m).sum(dims, keepdim=True) / n
    cov = ((pred - mp) * (target - mt) * m).sum(dims, keepdim=True)
    var = ((pred - mp) ** 2 * m).sum(dims, keepdim=True).clamp_min(1e-12)
    scale = cov / var
    return scale * pred + (mt - scale * mp)


def nearness(depth_map: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Map to 'larger = nearer', whatever the network outputs."""
    return depth_map if output_kind == "inverse_depth" else -depth_map


def normalize01(x: torch.Tensor) -> torch.Tensor:
    """Min–max normalise each map to [0, 1] (a flat map becomes 0)."""
    dims = tuple(range(1, x.dim()))
    lo, hi = x.amin(dims, keepdim=True), x.amax(dims, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def to_png16(near01: torch.Tensor) -> Image.Image:
    """H×W map in [0, 1] (nearer = brighter) → 16-bit greyscale PNG image."""
    array = (near01.detach().float().clamp(0, 1).cpu().numpy() * 65535).round().astype(np.uint16)
    return Image.fromarray(array)


def colorize(near01: torch.Tensor, cmap: str = "magma") -> Image.Image:
    """H×W map in [0, 1] → RGB preview with a perceptual colour map (bright = near)."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](near01.detach().float().clamp(0, 1).cpu().numpy())[..., :3]
    return Image.fromarray((colours * 255).round().astype(np.uint8))


def save_depth_maps(network, image: torch.Tensor, out_dir, stem: str) -> tuple:
    """Run ``network`` on a 1×3×H×W image; write ``STEM_depth.png`` (16-bit) and ``STEM_depth_color.png``."""
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        raw = network.predict(image.to(next(network.parameters()).device)).float().cpu()
    near = normalize01(nearness(raw, network.output_kind))[0, 0]
    png16, preview = out_dir / f"{stem}_depth.png", out_dir / f"{stem}_depth_color.png"
    to_png16(near).save(png16)
    colorize(near).save(preview)
    return png16, preview
