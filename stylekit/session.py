"""The runtime session: the one place where a run starts or resumes, a component is built and a model is found.

The command line, ``stylekit ablate``, the Python API (``stylekit.train``, ``stylekit.load``), the demo and
``stylekit evaluate`` all come through here, so each rule is written once:

- a run's recipe is validated, every component's options typed, and its inputs checked (paths, device, size)
  before any run folder exists, so a mistake leaves nothing behind;
- a fresh run gets a fresh folder (``OUTPUT_DIR/NAME``, ``NAME-2``…), locked from creation to the end;
- a resume imports only plugins the user vouches for, and may change anything but the network;
- a component is built from kind + name + options by :func:`build_component`, whatever its kind;
- a model is found from a path or a shipped name by :func:`resolve_model`.

The walk of a recipe through :func:`start_run`: :func:`~stylekit.config.load_recipe` (YAML, presets,
overrides, then every component's options validated into its own model by the registry) →
:func:`~stylekit.preflight.check_recipe` → :func:`~stylekit.runs.naming.run_name` →
:meth:`~stylekit.runs.folder.RunDir.claim` → :class:`~stylekit.trainer.Trainer`.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import torch
from rich.console import Console

from . import distributed
from .checkpoint import model_file_for
from .components import Component, ComponentOptions
from .config import Recipe, absolute_paths, load_raw, load_recipe
from .errors import ConfigError, StylekitError
from .plugins import Registry, get_registry
from .preflight import check_recipe
from .run_handle import Run
from .runs.folder import RunDir
from .runs.naming import run_info, run_name
from .runs.records import MISSING, config_diff
from .runs.trust import check_plugins
from .stylizer import Stylizer
from .yamlio import key_value_text

PathOrName = Union[str, os.PathLike]
#: a recipe: its file, or the raw mapping a file would hold (relative paths in it: from the working folder)
RecipeSource = Union[str, os.PathLike, Mapping[str, Any]]
#: ``--set`` texts (``["schedule.iterations=400"]``) or the same as a mapping (``{"schedule.iterations": 400}``)
Overrides = Union[Sequence[str], Mapping[str, Any]]


# -- starting and resuming runs -------------------------------------------------------------------------------

def override_texts(overrides: Overrides | None) -> list[str]:
    """``--set`` texts from either form :data:`Overrides` takes."""
    if isinstance(overrides, Mapping):
        return [key_value_text(str(key), value) for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise ConfigError(f"overrides={overrides!r}: give a list of KEY=VALUE texts or a mapping, e.g. "
                          "{'schedule.iterations': 400}")
    return [str(text) for text in overrides or ()]


def start_run(recipe: RecipeSource, overrides: Overrides | None = None, *, without: Sequence[str] = (),
              only: Sequence[str] = (), preset: str | None = None, plugins: Sequence[str] = (),
              run_dir: str | os.PathLike | None = None, info: Mapping[str, Any] | None = None,
              console: Console | None = None, show_progress: bool = True) -> Run:
    """Train a fresh run of ``recipe`` (a file or a raw mapping) into ``run_dir``, or into a new folder
    ``OUTPUT_DIR/NAME`` (``NAME-2``… when taken) named after what the overrides change.

    Everything is checked before a folder is made; ``info`` adds to what run.json records. Distributed
    (``torchrun``), rank 0 names and creates the folder.
    """
    texts = override_texts(overrides)
    raw = absolute_paths(dict(recipe), Path.cwd()) if isinstance(recipe, Mapping) else None
    resolved = load_recipe(None if raw is not None else recipe, texts, without=without, only=only,
                           extra_plugins=plugins, raw=raw, preset=preset)
    check_recipe(resolved, run_dir)  # inputs checked before any folder exists
    name = run_name(resolved.name, texts, without, only, preset=resolved.preset)
    asked = run_info(None if raw is not None else recipe, texts, without, only, resolved.preset, name,
                     **dict(info or {}))
    ctx = distributed.context()
    from .trainer import Trainer  # here, not above: importing the session (stylekit.load) needs no trainer

    # a fresh folder, locked from creation to the end, and removed again if no run is written in it
    with RunDir.claim(resolved.output_dir, name) if run_dir is None and ctx.is_main else nullcontext() as created:
        path = distributed.broadcast_object(ctx, str(run_dir) if run_dir is not None else
                                            str(created.path) if created is not None else None)
        return Trainer(resolved, created or RunDir(path), run_info=asked, console=console,
                       show_progress=show_progress).fit()


def resume_run(run_dir: str | os.PathLike, overrides: Overrides | None = None, *, without: Sequence[str] = (),
               only: Sequence[str] = (), plugins: Sequence[str] = (), trusted: Sequence[str] = (),
               trust_run_plugins: bool = False, console: Console | None = None, show_progress: bool = True) -> Run:
    """Continue the run in ``run_dir`` from its latest checkpoint, with its own recipe; ``overrides``, ``without``
    and ``only`` change it from the resumed step on (recorded in run.json). The plugins its config.yaml lists
    are imported only when given (``plugins``, ``trusted``), installed, or ``trust_run_plugins``."""
    texts = override_texts(overrides)
    folder = RunDir(run_dir)
    if not folder.config.is_file():
        raise ConfigError(f"--resume: {run_dir} is not a run directory (no {folder.config.name})")
    raw = load_raw(folder.inside(folder.config))
    check_plugins(folder, raw.get("plugins") or [], given=[*plugins, *trusted], trust=trust_run_plugins)
    resolved = load_recipe(None, texts, without=without, only=only, extra_plugins=plugins, raw=raw)
    changes = {"overrides": texts, "without": list(without), "only": list(only),
               "changed": resume_changes(folder, resolved)}
    from .trainer import Trainer  # here, not above: importing the session (stylekit.load) needs no trainer

    return Trainer(resolved, folder, resume=True, run_info=changes, console=console,
                   show_progress=show_progress).fit()


def resume_changes(folder: RunDir, recipe: Recipe) -> list[str]:
    """The dotted keys whose value a resume with ``recipe`` changes in the run's recorded config.yaml; a key this
    stylekit added to recipes since the run started, at its default, changes nothing. The network's options
    cannot change: the checkpoint holds weights for them."""
    changed = config_changes(folder.read_config(), recipe.model_dump(mode="json", exclude={"extends"}))
    model_keys = [k for k in changed if k.startswith("model.")]
    if model_keys:
        raise ConfigError(f"--resume {folder.path}: {', '.join(model_keys)} would change the network the checkpoint "
                          "holds weights for; a resumed run keeps its model options (start a new run to change them)")
    return changed


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The dotted keys whose value differs between a run's recorded config.yaml (``old``) and a resolved recipe as
    config.yaml holds it (``new``); a key this stylekit added to recipes since ``old`` was written, at its
    default, changes nothing (``model.name: johnson`` for a run from before networks were plugins); nor does a
    change to the recipe's ``presets``: they are a menu, and the one chosen is already applied to the values."""
    diff = config_diff([dict(old), dict(new)]) if old else {}
    return [k for k, (before, after) in diff.items()
            if k.split(".", 1)[0] != "presets"
            and not (before is MISSING and after == _default_of(k, new))]


def _default_of(key: str, config: Mapping[str, Any]) -> Any:
    """The recipe schema's default for dotted ``key`` (``MISSING``: required, or not a field); ``model.KEY``, an
    option of ``config``'s network, has its ``Options``' default."""
    from pydantic import BaseModel

    model: Any = Recipe
    *sections, name = key.split(".")
    if sections == ["model"] and name not in Recipe.model_fields["model"].annotation.model_fields:
        network = (config.get("model") or {}).get("name", "johnson")
        model = get_registry(config.get("plugins") or []).get("model", network).Options
        sections = []
    for part in sections:
        found = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = found.annotation if found is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in model.model_fields:
        return MISSING
    spec = model.model_fields[name]
    if spec.is_required():
        return MISSING
    default = spec.get_default(call_default_factory=True)
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else default


# -- components and models ------------------------------------------------------------------------------------

def build_component(kind: str, name: str, options: Mapping[str, Any] | ComponentOptions | None = None, *,
                    plugins: Iterable[PathOrName] = (), registry: Registry | None = None, where: str = "",
                    **extra: Any) -> Component:
    """A registered component of any kind (loss, backbone, depth, metric, logger, model…) from its name and options:
    the options are validated once into the component's own model (an already validated model is used as it
    is); errors name ``where`` (the recipe key or option the options came from)."""
    registry = registry if registry is not None else get_registry(plugins)
    return registry.build(kind, name, dict(options) if isinstance(options, Mapping) else options, where=where,
                          **extra)


def resolve_model(path_or_name: PathOrName) -> Path:
    """The ``model.safetensors`` a path or a name stands for: a run's latest checkpoint, a checkpoint folder's
    model, a file as given, or a shipped model's file (``stylekit models`` lists them)."""
    return model_file_for(path_or_name)


def load(path_or_name: PathOrName, *, device: str | torch.device = "cpu") -> Stylizer:
    """The trained network :func:`resolve_model` finds, as a :class:`~stylekit.stylizer.Stylizer` on ``device``
    (``"auto"``: CUDA, else MPS, else the CPU)."""
    return Stylizer.from_file(resolve_model(path_or_name), device=device)
