"""Sample grids: pictures fill their cells (small training samples are enlarged, no empty bands)."""

import numpy as np
import torch

from stylekit.viz import image_grid


def test_small_landscape_samples_fill_the_grid():
    small = torch.full((1, 3, 48, 64), 200.0)  # a 64×48 sample, smaller than the 192-px cell
    grid = np.asarray(image_grid([[small, small], [small, small]], cell=192, pad=4))
    colored = (grid[..., 0] < 230)  # the white canvas vs the gray images
    rows, cols = np.nonzero(colored.any(1))[0], np.nonzero(colored.any(0))[0]
    assert len(cols) == 2 * 192  # each image enlarged to the full cell width
    assert len(rows) == 2 * 144  # 48/64 × 192 per row: rows are as tall as their images, not square cells
    assert grid.shape[0] == 2 * (144 + 4) + 4


def test_portrait_and_landscape_in_one_row_keep_their_aspect():
    tall, wide = torch.full((3, 100, 50), 0.0), torch.full((3, 50, 100), 0.0)
    grid = np.asarray(image_grid([[tall, wide]], cell=100, pad=0))
    assert grid.shape[:2] == (100, 200)
    dark = grid[..., 0] < 128
    assert dark[:, :100].sum() == 50 * 100 and dark[:, 100:].sum() == 100 * 50
