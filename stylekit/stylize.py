"""Apply a trained transformer to images of any size."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from .data import list_images, load_image, to_image
from .models.transformer import TransformerNet
from .runtime import pick_device


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        files.extend(list_images(path) if path.is_dir() else [path])
    return files


@torch.no_grad()
def stylize_tensor(model: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """1×3×H×W in [0, 255] → same shape, stylised."""
    device = next(model.parameters()).device
    return model(image.to(device)).float().cpu()


def output_path(source: Path, out: Path, many: bool, suffix: str = ".png") -> Path:
    if many or out.is_dir() or not out.suffix:
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{source.stem}{suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def stylize_files(model: TransformerNet, files: list[Path], out: Path, *, max_size: int | None = None,
                  device: str = "auto", on_error=None, on_done=None) -> list[Path]:
    """Stylise each file into ``out`` (a folder, or a file for a single input). Bad files are reported, not fatal."""
    model = model.to(pick_device(device)).eval()
    written = []
    for source in files:
        try:
            image = load_image(source, max_size) if max_size else load_image(source)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(source, exc)
            continue
        target = output_path(source, out, len(files) > 1)
        to_image(stylize_tensor(model, image)[0]).save(target)
        written.append(target)
        if on_done:
            on_done(source, target)
    return written
