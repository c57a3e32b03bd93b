"""Helpers for testing stylekit and its plugins: tiny data and recipes that run in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .config import deep_merge


def make_images(folder: str | Path, count: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Path]:
    """Write ``count`` small random-but-structured RGB JPEGs (gradients plus blobs) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(count):
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * rng.uniform(80, 255, 3)
        for _ in range(3):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 12)
            base[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths


def tiny_recipe(root: str | Path, **overrides: Any) -> dict:
    """A complete raw recipe for a seconds-long CPU run with a randomly initialised VGG-16.

    ``root`` gets a ``content/`` folder and a ``style.jpg``; keyword arguments deep-merge
    onto the recipe (e.g. ``losses={"tv": {"weight": 0.0}}``).
    """
    root = Path(root)
    if not (root / "content").is_dir():
        make_images(root / "content", 6)
    if not (root / "style.jpg").is_file():
        make_images(root / "style_src", 1, (40, 40), seed=99)[0].rename(root / "style.jpg")
    raw = {
        "name": "tiny",
        "data": {"root": str(root / "content"), "image_size": 32, "workers": 0, "crop": "random"},
        "style": {"images": [str(root / "style.jpg")], "size": 32},
        "model": {"channels": 8, "residual_blocks": 1},
        "backbone": {"name": "vgg16", "options": {"weights": "random"}},
        "losses": {"content": {"weight": 1.0, "layer": "relu2_2"},
                   "style": {"weight": 1e3, "layers": ["relu1_2", "relu2_2"]},
                   "tv": {"weight": 1e-6}},
        "schedule": {"iterations": 6, "batch_size": 2, "seed": 0},
        "log": {"every": 2, "sample_every": 3, "checkpoint_every": 3, "num_samples": 2},
        "precision": "fp32",
        "device": "cpu",
        "output_dir": str(root / "runs"),
    }
    return deep_merge(raw, overrides)


def _distributed_worker(rank: int, world_size: int, init_file: str, raw: dict, run_dir: str, resume: bool) -> None:
    import os

    import torch
    import torch.distributed as dist

    from .config import validate_recipe
    from .train import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        Trainer(validate_recipe(raw), Path(run_dir), show_progress=False, resume=resume).fit()
    finally:
        dist.destroy_process_group()


def train_distributed(raw: dict, run_dir: str | Path, world_size: int = 2, resume: bool = False) -> None:
    """Train ``raw`` with ``world_size`` CPU processes (gloo), as torchrun would; for tests of data parallelism."""
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_distributed_worker, args=(world_size, str(Path(tmp) / "init"), raw, str(run_dir), resume),
                 nprocs=world_size, join=True)
