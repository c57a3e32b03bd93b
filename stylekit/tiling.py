"""Stylise very large images tile by tile, with overlapping, feathered tiles, so memory stays bounded.

Each tile is run through the network on its own and written into a float accumulator
with a weight that ramps linearly from ~0 to 1 across the overlap on every side that
borders another tile (1 at the image border); the result is Σ wᵢ·tileᵢ / Σ wᵢ. Only one
tile is on the device at a time.

With a batch-norm (eval) network the result equals the untiled one wherever a pixel is
farther from every tile edge than the network's receptive field. With instance norm
(the default) each tile is normalised with its own statistics, so colours and contrast
can shift slightly from tile to tile; feathering blends those shifts over the overlap
(no hard seam), but tiled and untiled outputs differ by a few grey levels overall. Use
larger tiles to reduce the difference.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

#: images with more pixels than this are tiled automatically (about 4 megapixels)
AUTO_TILE_PIXELS = 2048 * 2048


def tile_spans(length: int, tile: int, overlap: int, align: int = 4) -> list[tuple[int, int]]:
    """(start, size) of tiles covering ``length``, overlapping by at least ``overlap``.

    Starts are multiples of ``align`` (the network's total stride), so every tile sees the same
    downsampling grid as the whole image; the last tile runs to the end (up to ``align - 1`` longer).
    """
    if length <= tile:
        return [(0, length)]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride))
    last = (length - tile) // align * align
    if not starts or last > starts[-1]:
        starts.append(last)
    starts = sorted(set(starts))
    return [(s, (min(tile, length - s) if i < len(starts) - 1 else length - s)) for i, s in enumerate(starts)]


def feather(size: int, start: int, total: int, overlap: int) -> torch.Tensor:
    """1-D weights of one tile: a linear ramp over the overlap on sides that have a neighbour."""
    weight = torch.ones(size)
    ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap if overlap > 0 else torch.ones(0)
    n = min(overlap, size)
    if start > 0 and n:
        weight[:n] = torch.minimum(weight[:n], ramp[:n])
    if start + size < total and n:
        weight[size - n:] = torch.minimum(weight[size - n:], ramp[:n].flip(0))
    return weight


@torch.no_grad()
def stylize_tiled(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int = 512,
                  overlap: int = 64, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``run`` (N×3×h×w → N×3×h×w, any device) applied to 1×3×H×W ``image`` in feathered tiles; result on CPU."""
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile size ({tile})")
    _, c, h, w = image.shape
    rows, cols = tile_spans(h, tile, overlap), tile_spans(w, tile, overlap)
    out = torch.zeros(1, c, h, w)
    total = torch.zeros(1, 1, h, w)
    done, count = 0, len(rows) * len(cols)
    for top, th in rows:
        wy = feather(th, top, h, overlap)
        for left, tw in cols:
            weight = (wy[:, None] * feather(tw, left, w, overlap)[None, :])[None, None]
            result = run(image[:, :, top:top + th, left:left + tw]).float().cpu()
            out[:, :, top:top + th, left:left + tw] += result * weight
            total[:, :, top:top + th, left:left + tw] += weight
            done += 1
            if on_tile:
                on_tile(done, count)
    return out / total
