"""Apply a trained transformer to images of any size (tiled above a size threshold) and to videos."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .data import list_images, load_rgb, to_array, to_image, to_tensor
from .errors import StylekitError
from .models.conditional import StyleError, StyleSpec
from .pngstream import PngWriter
from .hardware import autocast, pick_device, pick_precision
from .tiling import AUTO_TILE_PIXELS, stylize_tiled, tiled_bands
from .video import VIDEO_SUFFIXES, is_video, stylize_video

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
#: video containers an H.264 stream can be written into
VIDEO_OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")
#: the network needs at least 5 pixels per side; smaller images and tiles are padded by repeating edge pixels
MIN_SIDE = 8
#: pixels of the image mirrored around it before the network runs and cropped off after: a trained network
#: brightens or darkens its own outermost rows (up to 60 gray levels, whatever the photo there), and the margin
#: puts those rows outside the picture (docs/quality.md, "Edge rows"); a multiple of the networks' stride of 4
MARGIN = 8
#: tiles smaller than this see too little of the image (``--tile 0`` switches tiling off)
MIN_TILE = 64


def expand_inputs(inputs: Iterable[str | Path], videos: bool = False) -> list[Path]:
    """Files and the images (and, with ``videos``, the videos) in folders, in a reproducible order."""
    files: list[Path] = []
    suffixes = IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ())
    for item in inputs:
        path = Path(item).expanduser()
        if not path.exists():
            raise StylekitError(f"input {path} does not exist; give image{' or video' if videos else ''} files or "
                                "folders of them")
        if not path.is_dir() and not path.is_file():
            raise StylekitError(f"input {path} is not a regular file (a pipe or device?); give image or video files")
        files.extend(list_images(path, suffixes, what=f"input folder {path}") if path.is_dir() else [path])
    return files


def plan_outputs(files: list[Path], out: Path | None, label: str = "stylized") -> list[Path]:
    """Where each input's result goes: ``out`` (one input), ``out/STEM.png`` (a folder), or, without ``out``,
    beside the input as ``STEM_<label>.png`` (``.mp4`` for videos).

    Inputs that would share an output name keep their suffix in it (:func:`distinct_stems`); an output that
    would overwrite an input, or a file name given for several inputs, is an error raised before any work is done.
    """
    def suffix(source: Path) -> str:
        return ".mp4" if is_video(source) else ".png"

    if out is None:
        stems = distinct_stems(files, [source.parent for source in files])
        targets = [source.with_name(f"{stem}_{label}{suffix(source)}") for source, stem in zip(files, stems)]
    elif len(files) == 1 and out.suffix and not out.is_dir():
        _check_output_suffix(files[0], out)
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise StylekitError(f"-o {out} is a file, but {len(files)} inputs need a folder; give a folder")
        if out.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES) and len(files) > 1:
            raise StylekitError(f"-o {out} names one file, but {len(files)} inputs were given; give a folder")
        targets = [out / f"{stem}{suffix(source)}" for source, stem in zip(files, distinct_stems(files))]
    sources = {source.resolve(): source for source in files}
    for target in targets:
        if target.resolve() in sources:
            raise StylekitError(f"the output for {sources[target.resolve()]} would overwrite that input; choose "
                                "another -o")
    return targets


def distinct_stems(files: Sequence[Path], folders: Sequence[Path] | None = None) -> list[str]:
    """The stem each input's outputs are named after, distinct within the folder they go to (``folders``, one per
    input; None: all into one): the input's stem, with its suffix added where inputs share a stem
    (``x.jpg``, ``x.png`` → ``x_jpg``, ``x_png``), then a counter where that is not enough (``x_png_2``).
    The one rule of every command that writes a file per input."""
    places: list[Path | None] = list(folders) if folders is not None else [None] * len(files)
    clashes = Counter((place, source.stem) for place, source in zip(places, files))
    used: set[tuple[Path | None, str]] = set()
    stems = []
    for place, source in zip(places, files):
        stem = source.stem
        if clashes[place, stem] > 1:
            stem = f"{stem}_{source.suffix.lstrip('.').lower() or 'file'}"
        candidate, n = stem, 2
        while (place, candidate) in used:
            candidate, n = f"{stem}_{n}", n + 1
        used.add((place, candidate))
        stems.append(candidate)
    return stems


def _check_output_suffix(source: Path, out: Path) -> None:
    suffix = out.suffix.lower()
    if is_video(source):
        if suffix not in VIDEO_OUTPUT_SUFFIXES:
            raise StylekitError(f"-o {out}: a video is written as {', '.join(VIDEO_OUTPUT_SUFFIXES)}; change the "
                                "suffix")
        return
    image_format = Image.registered_extensions().get(suffix)
    if suffix in VIDEO_SUFFIXES or image_format not in Image.SAVE:
        raise StylekitError(f"-o {out}: cannot write a {suffix or 'suffix-less'} image; use .png, .jpg, .webp or "
                            ".tif (or give a folder)")


# -- what runs: a network with its style, strength and colors -------------------------------------------------

def blend(content: torch.Tensor, styled: torch.Tensor, strength: float) -> torch.Tensor:
    """``content + strength·(styled − content)``, clamped to [0, 255]: 0 gives the photo, 1 the stylized image."""
    return (content + strength * (styled - content)).clamp(0, 255) if strength < 1.0 else styled.clamp(0, 255)


#: ITU-R BT.601 luma weights of R, G, B (the Y of JPEG's YCbCr)
LUMA = (0.299, 0.587, 0.114)


def keep_colors(content: torch.Tensor, styled: torch.Tensor) -> torch.Tensor:
    """The stylized image's brightness with the photo's colors: in YCbCr, the stylized Y with the photo's Cb and
    Cr, i.e. the photo shifted by the change in Y (RGB = Y + a function of Cb, Cr only)."""
    luma = content.new_tensor(LUMA).view(1, 3, 1, 1)
    change = ((styled.float() - content.float()) * luma).sum(1, keepdim=True)
    return content.float() + change


class Adjusted(nn.Module):
    """A network's result with the photo's colors (``preserve_color``) and blended with the photo (``strength``),
    per pixel, so tiles and video frames are adjusted alike."""

    def __init__(self, net: nn.Module, strength: float = 1.0, preserve_color: bool = False):
        super().__init__()
        self.net, self.strength, self.preserve_color = net, strength, preserve_color

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        styled = self.net(images)
        if self.preserve_color:
            styled = keep_colors(images, styled)
        return blend(images.float(), styled.float(), self.strength)


def stylization(model: nn.Module, style: StyleSpec | None = None, *, strength: float = 1.0,
                preserve_color: bool = False) -> nn.Module:
    """``model`` as ``stylekit stylize`` and :meth:`Stylizer.stylize` run it: a multi-style network conditioned
    on ``style`` (a name, an index or a mixture), with the photo's colors when ``preserve_color``, blended with
    the photo by ``strength`` (0: the photo, 1: fully stylized). Images in, images out."""
    if not 0.0 <= strength <= 1.0:
        raise StyleError(f"strength {strength}: give a value from 0 (the photo) to 1 (fully stylized)")
    if getattr(model, "styles", None):
        model = model.styled(style)
    elif style is not None:
        raise StyleError(f"style {style!r}: this model was trained for one style; a style is chosen only for "
                         "multi-style models (`stylekit models` lists their styles)")
    return Adjusted(model, strength, preserve_color) if strength < 1.0 or preserve_color else model


def style_label(style: StyleSpec | None) -> str:
    """A short file-name part for a style choice: ``udnie``, ``wave0.6-udnie0.4`` (empty for none)."""
    if style is None:
        return ""
    if isinstance(style, Mapping):
        text = "-".join(f"{name}{weight:g}" for name, weight in style.items())
    else:
        text = str(style).replace("=", "").replace(",", "-")
    return re.sub(r"[^\w.+-]", "_", text)[:60]


def _device_of(model: nn.Module) -> torch.device:
    """Where ``model`` computes: its parameters' device (a network run by another runtime: the CPU)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def with_margin(forward: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor,
                margin: int = MARGIN) -> torch.Tensor:
    """``forward`` on N×3×h×w (any h, w ≥ 1) mirrored ``margin`` pixels out on every side (and edge-padded while
    still below :data:`MIN_SIDE`), its output cropped back to the picture: the network's edge rows fall outside."""
    h, w = batch.shape[-2:]
    m = max(0, margin)
    if m:  # mirrored; an image too small to mirror that far repeats its edge pixels instead
        batch = F.pad(batch, (m, m, m, m), mode="reflect" if m < min(h, w) else "replicate")
    short_h, short_w = max(0, MIN_SIDE - h - 2 * m), max(0, MIN_SIDE - w - 2 * m)
    if short_h or short_w:
        batch = F.pad(batch, (0, short_w, 0, short_h), mode="replicate")
    return forward(batch)[..., m:m + h, m:m + w]


def _runner(model: nn.Module, dtype: torch.dtype, margin: int = MARGIN) -> Callable[[torch.Tensor], torch.Tensor]:
    """N×3×h×w → N×3×h×w for any h, w ≥ 1, through :func:`with_margin`."""
    device = _device_of(model)

    @torch.no_grad()
    def run(batch: torch.Tensor) -> torch.Tensor:
        with autocast(device, dtype):
            return with_margin(lambda padded: model(padded.to(device)).float(), batch, margin)

    return run


def _tile_for(h: int, w: int, tile: int | None) -> int:
    """The tile size to use (0: one pass). None: 512 px tiles above ~4 megapixels."""
    if tile is None:
        tile = 512 if h * w > AUTO_TILE_PIXELS else 0
    return tile if tile and max(h, w) > tile else 0


@torch.no_grad()
def stylize_tensor(model: nn.Module, image: torch.Tensor, *, dtype: torch.dtype = torch.float32,
                   tile: int | None = None, overlap: int = 64, margin: int = MARGIN) -> torch.Tensor:
    """1×3×H×W in [0, 255] (any H, W ≥ 1) → same shape, stylized, on the CPU.

    ``tile``: None tiles automatically above ~4 megapixels (512 px tiles); 0 never tiles. ``margin``: see
    :data:`MARGIN` (0: the network's raw output, edge rows included).
    """
    run = _runner(model, dtype, margin)
    h, w = image.shape[-2:]
    tile = _tile_for(h, w, tile)
    if tile:
        return stylize_tiled(run, image, tile, min(overlap, tile // 2 - 1))
    return run(image).cpu()


def stylize_image(model: nn.Module, image: Image.Image, *, dtype: torch.dtype = torch.float32,
                  tile: int | None = None, overlap: int = 64) -> Image.Image:
    """A PIL RGB image → the stylized PIL image. Tiled, the result is assembled from finished rows of tiles
    straight into the 8-bit output, so beyond the network's memory a huge image costs its input and output
    images (4 bytes per pixel each in Pillow) and one row of tiles; :func:`save_stylized` spares the output."""
    w, h = image.size
    if not _tile_for(h, w, tile):
        return to_image(stylize_tensor(model, to_tensor(image)[None], dtype=dtype, tile=0)[0])
    result = Image.new("RGB", (w, h))
    for top, band in _bands(model, image, dtype, tile, overlap):
        result.paste(to_image(band[0]), (0, top))
    return result


def save_stylized(model: nn.Module, image: Image.Image, target: Path, *, dtype: torch.dtype = torch.float32,
                  tile: int | None = None, overlap: int = 64) -> None:
    """Stylize ``image`` into the file ``target``. A tiled image bound for a PNG streams to the encoder a row of
    tiles at a time (:class:`~stylekit.pngstream.PngWriter`), so beyond the network it costs its input (4 bytes
    per pixel) and one row of tiles; any other format is encoded by Pillow from the whole result."""
    w, h = image.size
    if not (_tile_for(h, w, tile) and target.suffix.lower() == ".png"):
        stylize_image(model, image, dtype=dtype, tile=tile, overlap=overlap).save(target)
        return
    with PngWriter(target, w, h) as png:
        for _, band in _bands(model, image, dtype, tile, overlap):
            for top in range(0, band.shape[2], 64):  # converted to 8 bits a few rows at a time
                png.write(to_array(band[0, :, top:top + 64]))


def _bands(model: nn.Module, image: Image.Image, dtype: torch.dtype, tile: int | None, overlap: int):
    """(top, 1×3×rows×W band) of the tiled result of a PIL image, top to bottom (:func:`tiled_bands`)."""
    w, h = image.size
    tile = _tile_for(h, w, tile)

    def read(top: int, left: int, th: int, tw: int) -> torch.Tensor:
        return to_tensor(image.crop((left, top, left + tw, top + th)))[None]

    return tiled_bands(_runner(model, dtype), read, h, w, tile, min(overlap, tile // 2 - 1))


def style_sheet(model: nn.Module, image: Image.Image, *, dtype: torch.dtype = torch.float32, columns: int = 4,
                cell: int = 384, tile: int | None = None) -> Image.Image:
    """Every style of ``model`` on one photo, ``columns`` to a row: the photo, then each style, captioned with its
    name (a single-style model: its one look), as ``stylekit sheet`` writes it."""
    from .viz import image_grid

    content = to_tensor(image)[None]
    names = list(getattr(model, "styles", None) or [])
    looks = [("photo", content[0])]
    for name in names or [None]:
        net = stylization(model, name)
        looks.append((name or "stylized", stylize_tensor(net, content, dtype=dtype, tile=tile)[0]))
    rows = [looks[i:i + columns] for i in range(0, len(looks), columns)]
    return image_grid([[look for _, look in row] for row in rows], captions=[[name for name, _ in row] for row in rows],
                      cell=cell)


def stylize_files(model: nn.Module, files: list[Path], out: Path | None, *, max_size: int | None = None,
                  device: str = "auto", precision: str = "auto", tile: int | None = None, overlap: int = 64,
                  batch: int = 4, label: str = "stylized", on_error=None, on_done=None, on_warning=None,
                  on_frames=None) -> list[Path]:
    """Stylize each image or video into ``out`` (see :func:`plan_outputs`). Bad files are reported."""
    targets = plan_outputs(files, out, label)
    dev = pick_device(device, "--device")
    model = model.to(dev).eval()
    dtype = pick_precision(precision, dev, inference=True)
    written = []
    for source, target in zip(files, targets):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if is_video(source):
                def run_frames(frames: torch.Tensor) -> torch.Tensor:
                    h, w = frames.shape[-2:]
                    if _tile_for(h, w, tile):
                        return torch.cat([stylize_tensor(model, f[None], dtype=dtype, tile=tile, overlap=overlap)
                                          for f in frames])
                    return _runner(model, dtype)(frames)

                stylize_video(run_frames, source, target, batch=batch, max_size=max_size,
                              on_frames=on_frames, on_warning=on_warning)
            else:
                save_stylized(model, load_rgb(source, max_size), target, dtype=dtype, tile=tile, overlap=overlap)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(source, exc)
            continue
        written.append(target)
        if on_done:
            on_done(source, target)
    return written
