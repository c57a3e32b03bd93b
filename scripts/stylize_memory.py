"""Peak memory of ``stylekit stylize`` on a huge image, in bytes per pixel.

A benchmark, not a test: it writes a W×H JPEG (and, without ``--model``, a random-weight transformer) into a
temporary folder, then runs ``python -m stylekit stylize`` twice in child processes, on a small image and on
the huge one, both tiled the same way, and reads each child's peak resident set size from ``wait4``'s rusage
(what ``/usr/bin/time -v`` reports as "Maximum resident set size"). It reports

    bytes per pixel         = peak RSS, huge / (W × H)                        (stylekit's target: at most 16)
    bytes per pixel above   = (peak RSS, huge − peak RSS, small) / (W × H)    (what the image itself costs)

The small run's peak covers Python, torch (0.9 GB resident after ``import torch`` with its CUDA build), the
model and one tile's activations, so the first number depends on the torch build and the second does not.
A tiled PNG streams to the encoder a row of tiles at a time, so the image costs its
decoded input (4 bytes per pixel in Pillow) and one row of tiles.

    python scripts/stylize_memory.py --width 8000 --height 6000 --model wave_johnson   # 48 MP, a shipped model
    python scripts/stylize_memory.py                       # 12000 × 8000, the paper's network, random weights
    python scripts/stylize_memory.py --width 4000 --height 3000 --channels 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int, height: int, seed: int = 0) -> None:
    """A structured photo-like JPEG (gradients, waves and noise), built row block by row block."""
    rng = np.random.default_rng(seed)
    array = np.empty((height, width, 3), np.uint8)
    xx = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    for top in range(0, height, 512):
        yy = np.linspace(top / height, min(top + 512, height) / height, min(512, height - top), dtype=np.float32)[:, None]
        block = np.stack([200 * xx + 40 * np.sin(40 * yy), 200 * yy + 40 * np.cos(30 * xx),
                          120 + 80 * np.sin(25 * (xx + yy))], -1)
        block += rng.normal(0, 12, block.shape).astype(np.float32)
        array[top:top + block.shape[0]] = block.clip(0, 255).astype(np.uint8)
    Image.fromarray(array).save(path, quality=90)


def peak_rss(args: list[str]) -> tuple[int, float]:
    """(peak resident set size in bytes, seconds) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{child.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss * 1024, seconds  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=8000)
    parser.add_argument("--model", help="A shipped model (`stylekit models`) instead of random weights.")
    parser.add_argument("--channels", type=int, default=32, help="Transformer width (paper: 32).")
    parser.add_argument("--blocks", type=int, default=5, help="Residual blocks (paper: 5).")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", type=Path, help="Also write the result here.")
    args = parser.parse_args()

    import torch

    from stylekit.checkpoint import save_model
    from stylekit.models.transformer import TransformerNet
    from stylekit.hardware import cpu_description

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        if args.model is None:
            save_model(TransformerNet({"channels": args.channels, "residual_blocks": args.blocks}),
                       folder / "model.safetensors")
        model = ["--model", args.model] if args.model else [str(folder / "model.safetensors")]
        small = max(2 * args.tile, 1024)
        write_image(folder / "small.jpg", small, small)
        write_image(folder / "huge.jpg", args.width, args.height)

        def stylize(name: str) -> list[str]:
            return [sys.executable, "-m", "stylekit", "stylize", *model, str(folder / f"{name}.jpg"), "-o",
                    str(folder / f"{name}_out.png"), "--tile", str(args.tile), "--precision", args.precision,
                    "--device", "cpu"]

        base, base_seconds = peak_rss(stylize("small"))
        huge, huge_seconds = peak_rss(stylize("huge"))
        Image.MAX_IMAGE_PIXELS = None  # our own file: no decompression-bomb warning
        with Image.open(folder / "huge_out.png") as out:
            assert out.size == (args.width, args.height), out.size
    pixels = args.width * args.height
    result = {"width": args.width, "height": args.height, "pixels": pixels, "tile": args.tile,
              "model": args.model or {"channels": args.channels, "residual_blocks": args.blocks},
              "precision": args.precision, "peak_rss_small_bytes": base, "peak_rss_huge_bytes": huge,
              "bytes_per_pixel": round(huge / pixels, 2),
              "bytes_per_pixel_above_model": round((huge - base) / pixels, 2),
              "seconds_small": round(base_seconds, 1), "seconds_huge": round(huge_seconds, 1),
              "cpu": cpu_description(), "threads": torch.get_num_threads(), "python": platform.python_version(),
              "torch": torch.__version__}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
