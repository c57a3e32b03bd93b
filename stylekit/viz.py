"""Pictures people look at: labeled image grids and loss curves."""

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
               row_titles: Sequence[str] = (), title: str = "", cell: int = 192, pad: int = 4,
               captions: Sequence[Sequence[str]] = ()) -> Image.Image:
    """Rows of images (tensors in [0, 255] or PIL), each scaled to fill a ``cell``-wide column (small
    images are enlarged, so a 128-px training sample is as easy to look at as a large one); a row is as
    tall as its tallest image, so landscape rows leave no empty bands. ``captions``: a text above each image
    (rows of them, like ``rows``)."""
    font = _font(14)
    n_cols = max(len(r) for r in rows)
    label_w = 140 if row_titles else 0
    header = (22 if title else 0) + (20 if column_titles else 0)
    caption_h = 20 if captions else 0
    images = [[_fit(_as_image(item), cell) for item in row] for row in rows]
    heights = [max([img.height for img in row] + [cell // 4]) + caption_h for row in images]
    width = label_w + n_cols * (cell + pad) + pad
    height = header + sum(h + pad for h in heights) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y0 = pad
    if title:
        draw.text((pad, y0), title, fill="black", font=_font(16))
        y0 += 22
    for c, text in enumerate(column_titles):
        draw.text((label_w + pad + c * (cell + pad), y0), text, fill="black", font=font)
    y = y0 + (20 if column_titles else 0)
    for r, (row, row_h) in enumerate(zip(images, heights)):
        if r < len(row_titles):
            draw.multiline_text((pad, y + 4), _wrap(row_titles[r], 18), fill="black", font=font)
        for c, img in enumerate(row):
            x = label_w + pad + c * (cell + pad)
            if r < len(captions) and c < len(captions[r]):
                draw.text((x, y + 2), captions[r][c], fill="black", font=font)
            canvas.paste(img, (x + (cell - img.width) // 2, y + caption_h + (row_h - caption_h - img.height) // 2))
        y += row_h + pad
    return canvas


def _as_image(item: torch.Tensor | Image.Image) -> Image.Image:
    if isinstance(item, torch.Tensor):
        return to_image(item[0] if item.dim() == 4 else item)
    return item.convert("RGB")


def _fit(img: Image.Image, cell: int) -> Image.Image:
    """Scale (down or up) so the longer side is ``cell`` pixels."""
    scale = cell / max(img.width, img.height)
    if scale == 1:
        return img
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


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
