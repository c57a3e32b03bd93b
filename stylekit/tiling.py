"""Stylize very large images tile by tile, with overlapping, feathered tiles, so memory stays bounded.

Each tile is run through the network on its own and written into a float accumulator
with a weight that ramps linearly from ~0 to 1 across the overlap on every side that
borders another tile (1 at the image border); the result is Σ wᵢ·tileᵢ / Σ wᵢ. Only one
tile is on the device at a time, and the accumulator holds one row of tiles: finished
rows stream out (:func:`tiled_bands`), so a huge image never exists in float.

With a batch-norm (eval) network the result equals the untiled one wherever a pixel is
farther from every tile edge than the network's receptive field. With instance norm
(the default) each tile is normalized with its own statistics, so colors and contrast
can shift slightly from tile to tile; feathering blends those shifts over the overlap
(no hard seam), but tiled and untiled outputs differ by a few gray levels overall. Use
larger tiles to reduce the difference.
"""

from __future__ import annotations

from typing import Callable, Iterator

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
    """1-D weights of one tile: a linear ramp over the overlap on sides that have a neighbor."""
    weight = torch.ones(size)
    ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap if overlap > 0 else torch.ones(0)
    n = min(overlap, size)
    if start > 0 and n:
        weight[:n] = torch.minimum(weight[:n], ramp[:n])
    if start + size < total and n:
        weight[size - n:] = torch.minimum(weight[size - n:], ramp[:n].flip(0))
    return weight


@torch.no_grad()
def tiled_bands(run: Callable[[torch.Tensor], torch.Tensor], read: Callable[[int, int, int, int], torch.Tensor],
                height: int, width: int, tile: int = 512, overlap: int = 64,
                on_tile: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(top, band)``: finished rows of the tiled result, top to bottom, as 1×C×rows×``width`` on the CPU.

    ``read(top, left, h, w)`` gives the input tile (1×3×h×w), so the input can stay in any form (e.g. a
    decoded 8-bit image); only one row of tiles is accumulated in float at a time, and rows are handed
    out as soon as no later tile overlaps them. Memory is O(tile × width), not O(height × width).
    """
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile size ({tile})")
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    col_weights = [feather(tw, left, width, overlap) for left, tw in cols]
    acc: torch.Tensor | None = None  # Σ wᵢ·tileᵢ over rows [acc_top, acc_top + acc rows)
    total = torch.zeros(1, 1, 0, width)  # Σ wᵢ
    acc_top, done, count = 0, 0, len(rows) * len(cols)
    for top, th in rows:
        if acc is not None and top > acc_top:  # rows above `top` get no more tiles: hand them out
            n = top - acc_top
            yield acc_top, acc[:, :, :n].div_(total[:, :, :n])  # in place: no second copy of the band
            acc, total, acc_top = acc[:, :, n:], total[:, :, n:], top
        wy = feather(th, top, height, overlap)
        for (left, tw), wx in zip(cols, col_weights):
            result = run(read(top, left, th, tw)).float().cpu()
            if acc is None:
                acc = torch.zeros(1, result.shape[1], 0, width)
            grow = top + th - (acc_top + acc.shape[2])
            if grow > 0:
                acc = torch.cat([acc, acc.new_zeros(1, acc.shape[1], grow, width)], 2)
                total = torch.cat([total, total.new_zeros(1, 1, grow, width)], 2)
            weight = (wy[:, None] * wx[None, :])[None, None]
            r0 = top - acc_top
            acc[:, :, r0:r0 + th, left:left + tw] += result * weight
            total[:, :, r0:r0 + th, left:left + tw] += weight
            done += 1
            if on_tile:
                on_tile(done, count)
    if acc is not None:
        yield acc_top, acc.div_(total)


@torch.no_grad()
def stylize_tiled(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile: int = 512,
                  overlap: int = 64, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``run`` (N×3×h×w → N×3×h×w, any device) applied to 1×3×H×W ``image`` in feathered tiles; result on CPU."""
    _, c, h, w = image.shape
    out = torch.empty(1, c, h, w)
    for top, band in tiled_bands(run, lambda t, l, th, tw: image[:, :, t:t + th, l:l + tw], h, w, tile, overlap,
                                 on_tile):
        out[:, :, top:top + band.shape[2]] = band
    return out
