"""The Python API: ``stylekit.train`` a recipe, ``stylekit.load`` a trained network, list what is registered.

    import stylekit
    run = stylekit.train("recipes/quickstart.yaml", overrides={"schedule.iterations": 400})
    model = run.load()                                # or stylekit.load("runs/quickstart"), or a shipped name
    picture = model.stylize(Image.open("photo.jpg"))  # PIL in, PIL out; numpy and torch work the same way

Each is the runtime session's (:mod:`stylekit.session`), as the command line's are, so ``stylekit.train`` and
``stylekit train`` make the same run folder, and ``stylekit.load(...).stylize`` gives the pixels
``stylekit stylize`` writes.
"""

from __future__ import annotations

import os
from typing import Sequence

from rich.console import Console

from . import session
from .errors import StylekitError
from .models import zoo
from .plugins import KIND_HOOKS, get_registry
from .run_handle import Run, RunInterrupted
from .session import Overrides, PathOrName, RecipeSource, load
from .stylizer import Stylizer

__all__ = ["Run", "RunInterrupted", "Stylizer", "list_components", "list_models", "load", "train"]

list_models = zoo.list_models


def train(recipe: RecipeSource | None = None, overrides: Overrides | None = None, *, run_dir: PathOrName | None = None,
          resume: PathOrName | None = None, without: Sequence[str] = (), only: Sequence[str] = (),
          preset: str | None = None, plugins: Sequence[str] = (), progress: bool = True) -> Run:
    """Train a style network and return the :class:`~stylekit.session.Run` (its ``path``, ``metrics()``,
    ``load()``), as ``stylekit train`` does; what it prints goes to stderr.

    ``recipe``: a recipe file or a raw recipe mapping. ``overrides``: ``{"schedule.iterations": 400}`` or
    ``["schedule.iterations=400"]``, like ``--set``. ``run_dir``: the exact run folder (default: a fresh
    ``OUTPUT_DIR/NAME``). ``resume``: a run folder to continue from its latest checkpoint, with its own recipe
    (``overrides``, ``without``, ``only`` then change it from that step on). ``progress``: show a progress bar.
    Ctrl-C checkpoints the run and raises :class:`~stylekit.run_handle.RunInterrupted` (a ``KeyboardInterrupt``
    that says how to resume).
    """
    console = Console(stderr=True)
    if resume is not None:
        for given, name in ((recipe, "recipe"), (run_dir, "run_dir"), (preset, "preset")):
            if given is not None:
                raise StylekitError(f"resume={os.fspath(resume)!r} continues that run with its own recipe; {name} "
                                    "cannot be given with it (change the run with overrides, without, only)")
        return session.resume_run(resume, overrides, without=without, only=only, plugins=plugins, console=console,
                                  show_progress=progress)
    if recipe is None:
        raise StylekitError("train() needs a recipe (a file or a mapping), or resume=RUN_DIR")
    return session.start_run(recipe, overrides, without=without, only=only, preset=preset, plugins=plugins,
                             run_dir=run_dir, console=console, show_progress=progress)


def list_components(kind: str, pattern: str = "*", plugins: Sequence[PathOrName] = ()) -> list[str]:
    """Registered component names of ``kind`` (loss, backbone, depth, metric, logger, model) matching ``pattern``
    (fnmatch),
    like ``timm.list_models("resnet*")``. ``plugins``: extra plugin files or modules to load first."""
    if kind not in KIND_HOOKS:
        raise StylekitError(f"unknown component kind {kind!r}; kinds: {', '.join(KIND_HOOKS)}")
    return get_registry(plugins).names(kind, pattern)
