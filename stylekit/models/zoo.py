"""Trained style networks shipped inside the package, addressed by name (``stylekit.load("NAME")``).

A shipped model is one file, ``stylekit/models/pretrained/NAME.safetensors``, written by
:func:`stylekit.checkpoint.save_model` (the same file a run's checkpoint holds), so the name is the
file's stem and adding a model means adding a file. Like timm's ``list_models``, :func:`list_models`
filters names with a shell-style pattern.
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path

from ..errors import StylekitError

SUFFIX = ".safetensors"


def pretrained_dir() -> Path:
    """The folder the shipped models live in (inside the installed package)."""
    return Path(str(resources.files("stylekit.models") / "pretrained"))


def shipped_models(root: Path | None = None) -> dict[str, Path]:
    """Name → file of every shipped model, sorted by name (empty when none ship)."""
    folder = pretrained_dir() if root is None else Path(root)
    if not folder.is_dir():
        return {}
    return {p.name[:-len(SUFFIX)]: p for p in sorted(folder.iterdir()) if p.name.endswith(SUFFIX) and p.is_file()}


def list_models(pattern: str = "*", root: Path | None = None) -> list[str]:
    """Names of the shipped models matching ``pattern`` (fnmatch, e.g. ``"*wave*"``)."""
    return [name for name in shipped_models(root) if fnmatch.fnmatch(name, pattern)]


def shipped_model_file(name: str, root: Path | None = None) -> Path:
    """The file of shipped model ``name``; an error that lists the shipped names otherwise."""
    models = shipped_models(root)
    if name in models:
        return models[name]
    known = ", ".join(models) or "none in this installation"
    raise StylekitError(f"no shipped model named {name!r} (shipped models: {known}); give a run folder, a "
                        "checkpoint folder or a .safetensors file instead, e.g. `runs/quickstart`")
