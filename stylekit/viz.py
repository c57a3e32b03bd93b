"""Pictures people look at: labelled image grids and loss curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from .data import to_image


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def image_grid(rows: Sequence[Sequence[torch.Tensor | Image.Image]], column_titles: Sequence[str] = (),
               row_titles: Sequence[str] = (), title: str = "", cell: int = 192, pad: int = 4) -> Image.Image:
    """Rows of images (tensors in [0, 255] or PIL) fitted into cells, with optional labels."""
    font = _font(14)
    n_cols = max(len(r) for r in rows)
    label_w = 140 if row_titles else 0
    header = (22 if title else 0) + (20 if column_titles else 0)
    width = label_w + n_cols * (cell + pad) + pad
    height = header + len(rows) * (cell + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y0 = pad
    if title:
        draw.text((pad, y0), title, fill="black", font=_font(16))
        y0 += 22
    for c, text in enumerate(column_titles):
        draw.text((label_w + pad + c * (cell + pad), y0), text, fill="black", font=font)
    y0 += 20 if column_titles else 0
    for r, row in enumerate(rows):
        y = y0 + r * (cell + pad)
        if r < len(row_titles):
            draw.multiline_text((pad, y + 4), _wrap(row_titles[r], 18), fill="black", font=font)
        for c, item in enumerate(row):
            img = to_image(item[0] if isinstance(item, torch.Tensor) and item.dim() == 4 else item) \
                if isinstance(item, torch.Tensor) else item.convert("RGB")
            img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            x = label_w + pad + c * (cell + pad)
            canvas.paste(img, (x + (cell - img.width) // 2, y + (cell - img.height) // 2))
    return canvas


def _wrap(text: str, width: int) -> str:
    """Hard-wrap each line of ``text`` (existing line breaks are kept)."""
    return "\n".join(line[i:i + width] for line in text.split("\n") for i in range(0, max(len(line), 1), width))


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss_curves(metrics_file: Path, out: Path, title: str = "") -> Path | None:
    """Total and per-term weighted losses over steps (log scale) → PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_file)
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(steps, [r["loss"] for r in rows], color="black", label="total (weighted)")
    for term in sorted(rows[-1]["terms"]):
        axes[0].plot(steps, [r["terms"].get(term, {}).get("weighted", float("nan")) for r in rows], label=term)
        axes[1].plot(steps, [r["terms"].get(term, {}).get("raw", float("nan")) for r in rows], label=term)
    axes[0].set_title("weighted terms")
    axes[1].set_title("unweighted terms")
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
