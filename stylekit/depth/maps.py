"""Pictures of relative depth maps (their alignment and normalization are in :mod:`stylekit.functional`)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .. import functional


def nearness(depth_map: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Map to 'larger = nearer', whatever the network outputs."""
    return depth_map if output_kind == "inverse_depth" else -depth_map


def to_png16(near01: torch.Tensor) -> Image.Image:
    """H×W map in [0, 1] (nearer = brighter) → 16-bit grayscale PNG image."""
    array = (near01.detach().float().clamp(0, 1).cpu().numpy() * 65535).round().astype(np.uint16)
    return Image.fromarray(array)


def colorize(near01: torch.Tensor, cmap: str = "magma") -> Image.Image:
    """H×W map in [0, 1] → RGB preview with a perceptual color map (bright = near)."""
    import matplotlib

    colors = matplotlib.colormaps[cmap](near01.detach().float().clamp(0, 1).cpu().numpy())[..., :3]
    return Image.fromarray((colors * 255).round().astype(np.uint8))


def save_depth_maps(network, image: torch.Tensor, out_dir, stem: str) -> tuple:
    """Run ``network`` on a 1×3×H×W image; write ``STEM_depth.png`` (16-bit) and ``STEM_depth_color.png``."""
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        raw = network.predict(image.to(next(network.parameters()).device)).float().cpu()
    near = functional.normalize_min_max(nearness(raw, network.output_kind))[0, 0]
    png16, preview = out_dir / f"{stem}_depth.png", out_dir / f"{stem}_depth_color.png"
    to_png16(near).save(png16)
    colorize(near).save(preview)
    return png16, preview
