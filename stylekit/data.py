"""Training images: a recursive image folder, resized/cropped, with bad files skipped and counted.

Data order and augmentation are functions of (seed, global sample position) only,
so a resumed run sees exactly the images an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch.utils.data import Dataset, Sampler

from .config import BUILTIN_PREFIX
from .errors import ConfigError, ImageError

#: scikit-image's bundled color/gray photographs (shipped in its wheel: no download)
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "camera.png", "brick.png", "grass.png", "gravel.png")


def builtin_images(name: str) -> list[Path]:
    if name == "skimage":
        try:
            import skimage
        except ImportError as exc:  # pragma: no cover - a runtime dependency
            raise ConfigError("data.root 'builtin:skimage' needs scikit-image: pip install scikit-image") from exc
        folder = Path(skimage.__file__).parent / "data"
        return [folder / f for f in SKIMAGE_PHOTOS if (folder / f).is_file()]
    raise ConfigError(f"unknown built-in dataset {BUILTIN_PREFIX}{name!r}; known: {BUILTIN_PREFIX}skimage")


def list_images(root: str | Path, extensions: Sequence[str] = (".jpg", ".jpeg", ".png", ".webp", ".bmp"),
                what: str = "data.root") -> list[Path]:
    """Image files under ``root`` (recursively), sorted for a reproducible order; a file is a list of one.

    ``what`` names the recipe key or option in errors.
    """
    root_text = str(root)
    if root_text.startswith(BUILTIN_PREFIX):
        return builtin_images(root_text[len(BUILTIN_PREFIX):])
    path = Path(root).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"{what}: {path} is not a folder (give a folder of images, or {BUILTIN_PREFIX}skimage)")
    suffixes = {e.lower() for e in extensions}
    try:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    except OSError as exc:  # an unreadable subfolder, a symlink loop…
        raise ConfigError(f"{what}: cannot list the images under {path}: {exc}") from None
    if not files:
        raise ConfigError(f"{what}: no images ({', '.join(sorted(suffixes))}) under {path}")
    return files


def load_rgb(path: str | Path, max_side: int | None = None) -> Image.Image:
    """Open any image as 8-bit RGB: EXIF rotation applied; gray, palette, CMYK converted; alpha over white.

    ``max_side`` shrinks (never enlarges) so the longer side is at most that. An RGB file costs one decoded
    copy (4 bytes per pixel in Pillow), no more, so huge images stay affordable. Pillow's decompression-bomb
    limit (about 179 megapixels) still applies; below it the size warning is not repeated.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            img = to_rgb(img)
    if max_side and max(img.size) > max_side:
        img = _resize_long_side(img, max_side)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image as 8-bit RGB: gray, palette, CMYK and 16-bit converted; alpha composited over white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((255 * arr / max(arr.max(), 1)).astype(np.uint8))
    return img.convert("RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB → float tensor 3×H×W in [0, 255] (stylekit's image convention)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()


def to_array(tensor: torch.Tensor) -> np.ndarray:
    """Float tensor 3×H×W in [0, 255] → H×W×3 uint8."""
    return tensor.detach().float().clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()


def to_image(tensor: torch.Tensor) -> Image.Image:
    """Float tensor 3×H×W in [0, 255] → PIL RGB."""
    return Image.fromarray(to_array(tensor))


def _resize_long_side(img: Image.Image, size: int, long_side: bool = True) -> Image.Image:
    w, h = img.size
    scale = size / (max(w, h) if long_side else min(w, h))
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def load_image(path: str | Path, size: int | None = None, *, long_side: bool = True) -> torch.Tensor:
    """Load an image as 1×3×H×W in [0, 255], optionally resized (longer or shorter side = ``size``)."""
    img = load_rgb(path)
    if size:
        img = _resize_long_side(img, size, long_side)
    return to_tensor(img).unsqueeze(0)


def describe_unreadable(path: str | Path, exc: BaseException) -> str:
    """One line for a file that could not be used as an image: ``PATH: what went wrong``."""
    if isinstance(exc, FileNotFoundError):
        return f"{path}: the file does not exist"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: a folder, not an image file"
    if isinstance(exc, Image.DecompressionBombError):
        return f"{path}: too many pixels for Pillow's decompression-bomb limit ({exc})"
    if isinstance(exc, Image.UnidentifiedImageError):
        return f"{path}: not an image Pillow can read"
    return f"{path}: {type(exc).__name__}: {exc}"


def read_images(paths: Sequence[str | Path], what: str, size: int | None = None, *, long_side: bool = True,
                want: int | None = None) -> tuple[list[torch.Tensor], list[str]]:
    """Load images in order, skipping unreadable ones: (images, one line per skipped file).

    Stops after ``want`` images. :class:`ImageError` naming ``what`` (the recipe key or option the paths
    came from) when none could be read, since every caller needs at least one.
    """
    images: list[torch.Tensor] = []
    skipped: list[str] = []
    for path in paths:
        if want is not None and len(images) >= want:
            break
        try:
            images.append(load_image(path, size, long_side=long_side))
        except Exception as exc:  # Pillow's decoders raise many kinds on damaged files
            skipped.append(describe_unreadable(path, exc))
    if not images:
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise ImageError(f"{what}: none of the {len(skipped)} image(s) could be read ({shown}). Replace or remove "
                         "the broken files, or point the key at other images.")
    return images, skipped


def fit_crop(img: Image.Image, size: int, mode: str, rng: torch.Generator | None = None) -> Image.Image:
    """Resize and crop to size×size: 'squash', 'center', or seeded 'random' (scale, position, flip)."""
    if mode == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    w, h = img.size
    scale = size / min(w, h)
    if mode == "random":
        scale *= 1.0 + 0.25 * float(torch.rand((), generator=rng))
    nw, nh = max(size, math.ceil(w * scale)), max(size, math.ceil(h * scale))
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    if mode == "random":
        left = int(torch.randint(0, nw - size + 1, (), generator=rng))
        top = int(torch.randint(0, nh - size + 1, (), generator=rng))
        img = img.crop((left, top, left + size, top + size))
        if float(torch.rand((), generator=rng)) < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


class ImageFolder(Dataset):
    """Training crops. Items are addressed by ``(index, position)`` from :class:`ResumableSampler`.

    A file that cannot be decoded is skipped (the next file is used instead) and
    reported in the item's ``skipped`` list so the trainer can warn and count it.
    """

    def __init__(self, files: Sequence[Path], size: int, crop: str = "random", seed: int = 0,
                 cache_dir: str | Path | None = None):
        if not files:
            raise ConfigError("no training images")
        self.files = list(files)
        self.size, self.crop, self.seed = size, crop, seed
        self.cache = DecodedCache(cache_dir, math.ceil(size * 1.25)) if cache_dir else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, position = key if isinstance(key, tuple) else (key, key)
        skipped: list[str] = []
        for attempt in range(len(self.files)):
            path = self.files[(index + attempt) % len(self.files)]
            try:
                img = self.cache.load(path) if self.cache is not None else load_rgb(path)
            except Exception as exc:  # corrupt, truncated, not an image…
                skipped.append(describe_unreadable(path, exc))
                continue
            rng = torch.Generator().manual_seed(self.seed * 1_000_003 + position)
            image = to_tensor(fit_crop(img, self.size, self.crop, rng))
            return {"image": image, "skipped": skipped}
        raise ImageError(f"data.root: none of the {len(self.files)} training images could be read (e.g. "
                         f"{'; '.join(skipped[:3])}); replace the broken files or point data.root at other images")


class DecodedCache:
    """Decoded, pre-resized uint8 copies of training images (``.npy``), so each JPEG is decoded once.

    Images are shrunk (never enlarged) so their short side is ``short_side``; entries are keyed by
    path, size and mtime, and written atomically, so concurrent DataLoader workers are safe.
    """

    def __init__(self, folder: str | Path, short_side: int):
        self.folder = Path(folder).expanduser()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.short_side = short_side

    def entry(self, path: Path) -> Path:
        import hashlib

        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.short_side}"
        return self.folder / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def load(self, path: Path) -> Image.Image:
        entry = self.entry(path)
        if entry.is_file():
            try:
                return Image.fromarray(np.load(entry))
            except (OSError, ValueError):
                pass  # a damaged entry: rebuild it
        img = load_rgb(path)
        w, h = img.size
        if min(w, h) > self.short_side:
            scale = self.short_side / min(w, h)
            img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
        import os
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(img, dtype=np.uint8))
        os.replace(tmp, entry)
        return img


def collate(items: list[dict]) -> dict:
    return {"image": torch.stack([it["image"] for it in items]),
            "skipped": [s for it in items for s in it["skipped"]]}


class ResumableSampler(Sampler):
    """An endless, seeded stream of ``(index, position)``; a fresh permutation each epoch.

    Starting at ``start`` (= steps done × batch size) reproduces exactly the stream an
    uninterrupted run would see from there. With ``num_replicas > 1`` each rank takes
    every ``num_replicas``-th sample of the same stream (data-parallel training).
    """

    def __init__(self, size: int, seed: int = 0, start: int = 0, rank: int = 0, num_replicas: int = 1):
        self.size, self.seed, self.start = size, seed, start
        self.rank, self.num_replicas = rank, num_replicas

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + 7919 * epoch))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start * self.num_replicas + self.rank
        epoch, perm = -1, None
        while True:
            if position // self.size != epoch:
                epoch = position // self.size
                perm = self._permutation(epoch)
            yield int(perm[position % self.size]), position
            position += self.num_replicas

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62



# -- synthetic images (benchmarks, tests, examples: no data set needed) ----------------

def synthetic_array(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An H×W×3 float array in [0, 255]: color gradients plus a few discs, so images have edges and texture."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], -1) * rng.uniform(80, 255, 3)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(4, 12)
        base[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return base.clip(0, 255)


def write_synthetic_images(folder: str | Path, count: int = 6, size: tuple[int, int] = (48, 40),
                           seed: int = 0) -> list[Path]:
    """Write ``count`` synthetic RGB JPEGs (``size`` is W, H) into ``folder``: ``img_000.jpg``…"""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(synthetic_array(rng, *size).astype(np.uint8)).save(path, quality=95)
        paths.append(path)
    return paths
