"""Checks a run's inputs before any training step, so a mistake costs seconds, not a failed run.

:func:`check_recipe` looks at what exists before anything is built (paths, folders that will be
written, the device, the transformer's size); :func:`check_taps` at what the built networks offer (layer
names). Each problem is a :class:`ConfigError` naming the recipe key and what to do. Unreadable
images are not errors here: they are skipped and counted where they are read
(:func:`stylekit.data.read_images`), and only "no readable image at all" stops a run.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

from .checkpoint import expected_tensors, model_file_for, model_size_problem
from .config import BUILTIN_PREFIX, Recipe
from .errors import ConfigError, StylekitError
from .hardware import check_device
from .plugins import get_registry

#: bytes of memory per transformer parameter while training: weights, gradients, Adam's two moments
TRAINING_BYTES_PER_PARAMETER = 16


def check_recipe(recipe: Recipe, run_dir: str | Path | None = None) -> None:
    """Paths and sizes of ``recipe`` (and the run folder about to be written); raises :class:`ConfigError`."""
    check_data_root(recipe.data.root)
    if recipe.data.cache_dir:
        check_writable_folder(recipe.data.cache_dir, "data.cache_dir")
    for i, image in enumerate(recipe.style.images):
        check_image_file(image, f"style.images[{i}]")
    for i, image in enumerate(recipe.log.sample_images):
        check_image_file(image, f"log.sample_images[{i}]")
    if run_dir is None:
        check_writable_folder(recipe.output_dir, "output_dir")
    else:
        check_writable_folder(run_dir, "the run folder")
    check_model_size(recipe)
    check_model_init(recipe)
    if recipe.device != "auto":
        check_device(recipe.device, "device")


def check_data_root(root: str) -> None:
    if root.startswith(BUILTIN_PREFIX):
        return  # resolved (and checked) by stylekit.data.builtin_images
    path = Path(root).expanduser()
    if path.is_file():
        raise ConfigError(f"data.root: {path} is a file; data.root is a folder of training images (searched "
                          "recursively): put the image(s) in a folder and give that folder")
    if not path.is_dir():
        raise ConfigError(f"data.root: {path} does not exist; give a folder of training images, or "
                          f"{BUILTIN_PREFIX}skimage for scikit-image's sample photographs")


def check_image_file(path: str, key: str) -> None:
    """``path`` exists and is a file (whether it decodes is found out, and counted, when it is read)."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise ConfigError(f"{key}: {file} is a folder; give an image file")
    if file.exists() and not file.is_file():
        raise ConfigError(f"{key}: {file} is not a regular file (a pipe or device?); give an image file")
    if not file.is_file():
        raise ConfigError(f"{key}: {file} does not exist; check the path (relative paths are relative to the "
                          "recipe file)")


def check_writable_folder(path: str | Path, key: str) -> None:
    """``path`` is, or can be created as, a folder this process may write into."""
    folder = Path(path).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be created: {existing} is a file"
        raise ConfigError(f"{key}: {folder} {where}; give a folder (or remove the file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {folder} cannot be written ({existing} is not writable by this user); "
                          "choose another folder")
    if existing != folder:  # access() can say yes where nothing can be made (as root; /proc, /sys): try
        try:
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".stylekit-check-"))
        except OSError as exc:
            raise ConfigError(f"{key}: {folder} cannot be created in {existing} ({exc.strerror or exc}); "
                              "choose another folder") from None


def check_model_size(recipe: Recipe) -> None:
    """The transformer's parameters (with gradients and Adam state) must fit in this machine's memory."""
    cls = get_registry(recipe.plugins).get("model", recipe.model.name, "model.name")
    options = recipe.options_at("model")
    if problem := model_size_problem(options, cls):
        raise ConfigError(f"model: {problem}")
    parameters = sum(math.prod(shape) for shape, _ in expected_tensors(options, cls).values())
    needed = parameters * TRAINING_BYTES_PER_PARAMETER
    memory = _physical_memory()
    if memory and needed > memory:
        raise ConfigError(f"model: {key_value_summary(options)} means {parameters:,} parameters, about "
                          f"{needed / 2**30:.1f} GiB to train, more than this machine's {memory / 2**30:.1f} GiB; "
                          "use fewer channels or blocks (paper: 32 and 5)")


def key_value_summary(options) -> str:
    """``channels=32, residual_blocks=5`` from a network's options (their integer values)."""
    return ", ".join(f"{k}={v}" for k, v in options.model_dump().items() if isinstance(v, int) and not isinstance(v, bool))


def check_model_init(recipe: Recipe) -> None:
    """``model.init`` names a model stylekit can find; ``model.train: new_styles`` adds styles to a multi-style
    network it starts from, without weight decay (which would move the styles that are kept)."""
    model = recipe.model
    if model.init:
        try:
            model_file_for(model.init)
        except StylekitError as exc:
            raise ConfigError(f"model.init: {exc}") from None
    if model.train != "new_styles":
        return
    if not model.init or "styles" not in get_registry(recipe.plugins).get("model", model.name).Options.model_fields:
        raise ConfigError("model.train: new_styles adds styles to a trained multi-style network: give its run or "
                          "model file as model.init and a multi-style model.name (cin, cin_lite)")
    if recipe.optim.weight_decay:
        raise ConfigError("model.train: new_styles needs optim.weight_decay: 0 (weight decay would change the "
                          "styles that are kept)")


def check_taps(terms: Iterable, perception) -> None:
    """Every layer a loss term taps exists in its network (names and lists them otherwise)."""
    for term in terms:
        for tap in dict.fromkeys([*term.taps(), *term.output_taps(), *term.style_taps()]):
            network = perception.network(tap.network)
            known = getattr(network, "layer_names", None)
            if known is not None and tap.layer not in known:
                name = getattr(network, "name", tap.network)
                raise ConfigError(f"losses.{term.key}: layer {tap.layer!r} is not in {name}; its layers are: "
                                  f"{', '.join(known)}")


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None
