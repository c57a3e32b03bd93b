"""Recipes: YAML files validated by pydantic, with ``extends:`` and ``--set`` overrides.

Relative paths in a recipe file are relative to that file. Each loss term's
options are validated by the term's own model (from its plugin), so a typo in
``losses.style.layrs`` is reported with the key path and the allowed keys.
"""

from __future__ import annotations

import math

import copy
import warnings
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .components import ComponentOptions, format_validation_error
from .errors import ConfigError, OptionsError, StylekitError
from .hardware import PRECISIONS
from .plugins import get_registry, plugin_file
from .recipe_model import ModelConfig, with_style_names
from .yamlio import key_value_text, parse_key_value, safe_yaml_load

BUILTIN_PREFIX = "builtin:"

#: recipes larger than this are refused (the bundled ones are ~2 KB)
MAX_RECIPE_BYTES = 1_000_000
#: recipes reached through ``extends:``
MAX_EXTENDS = 16


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Section):
    root: str = Field(..., description="Folder of training images, searched recursively; or 'builtin:skimage' "
                                       "for scikit-image's bundled sample photographs.")
    image_size: int = Field(256, ge=16, description="Training crops are image_size × image_size (paper: 256).")
    crop: Literal["squash", "center", "random"] = Field(
        "random", description="'squash': resize to a square (paper); 'center': resize short side, center crop; "
                              "'random': random scale (1–1.25×), crop and flip, seeded and resumable.")
    workers: int = Field(2, ge=0, description="DataLoader worker processes (0: load in the main process).")
    extensions: list[str] = Field(default_factory=lambda: [".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"],
                                  description="File suffixes taken as images (case-insensitive).")
    cache_dir: str | None = Field(
        None, description="Folder for a cache of decoded, pre-resized (short side ≈ 1.25 × image_size) uint8 "
                          "images, so large JPEGs are decoded once; crops are then taken from the cached copy, "
                          "which changes pixels slightly versus no cache.")


class StyleConfig(Section):
    images: list[str] = Field(..., min_length=1, description="Style image path(s). A single-style network matches "
                                                            "their mean Gram matrices; a multi-style one (e.g. "
                                                            "`model.name: cin`) learns one style per image.")
    size: int = Field(256, ge=16, description="Style images are resized so their longer side is this many pixels.")
    license: str | list[str] | None = Field(
        None, description="License of the style image(s), e.g. 'public domain' or 'CC BY-SA 4.0', or a list with "
                          "one per image; recorded in every checkpoint's model card and in exported models. It "
                          "describes `images`: change it with them.")
    attribution: str | list[str] | None = Field(
        None, description="Who made the style image(s) and where they come from, e.g. 'Hokusai, The Great Wave off "
                          "Kanagawa (c. 1831)', or a list with one per image; recorded in model cards like the license.")
    sampling: Literal["element", "batch"] = Field(
        "element", description="Multi-style networks: 'element' draws a style per batch element (as Dumoulin et "
                               "al.'s code, magenta's image_utils.style_image_inputs), 'batch' one per batch.")

    @model_validator(mode="after")
    def _one_per_image(self):
        for key in ("license", "attribution"):
            value = getattr(self, key)
            if isinstance(value, list) and len(value) != len(self.images):
                raise ValueError(f"{key} lists {len(value)} entries for {len(self.images)} images; give one per "
                                 "image, in the same order, or a single text for all")
        return self


class BackboneConfig(Section):
    name: str = Field("vgg16", description="Registered perception backbone (see `stylekit plugins`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of that backbone (its own model).")


class OptimConfig(Section):
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (paper: 1e-3); the peak when decayed.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay.")
    decay: Literal["none", "cosine"] = Field(
        "none", description="'none': the same rate throughout (the papers); 'cosine': from `lr` down to "
                            "`lr × final_lr` over schedule.iterations (half a cosine), for short CPU budgets.")
    final_lr: float = Field(0.05, gt=0, le=1, description="With decay 'cosine': the last step's rate as a fraction "
                                                          "of `lr`.")
    warmup: int = Field(0, ge=0, description="Steps over which the rate rises linearly from 0 to `lr` first.")

    def rate(self, step: int, iterations: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based): a pure function of the step, so a resumed
        run continues the same schedule."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.decay == "none":
            return self.lr
        progress = min(1.0, (step - self.warmup) / max(1, iterations - self.warmup))
        return self.lr * (self.final_lr + (1 - self.final_lr) * 0.5 * (1 + math.cos(math.pi * progress)))


class ScheduleConfig(Section):
    iterations: int = Field(40000, ge=1, description="Optimizer steps (paper: 40,000).")
    batch_size: int = Field(4, ge=1, description="Images per step (paper: 4).")
    seed: int = Field(0, description="Seeds model initialization, data order and augmentation.")


class LogConfig(Section):
    every: int = Field(10, ge=1, description="Write metrics (every term, raw and weighted) every N steps.")
    sample_every: int = Field(200, ge=1, description="Write a sample grid (content | stylized) every N steps.")
    checkpoint_every: int = Field(500, ge=1, description="Write a checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(3, ge=1, description="How many recent checkpoints to keep.")
    sample_images: list[str] = Field(default_factory=list,
                                     description="Images for the sample grids (default: the first few training images).")
    num_samples: int = Field(4, ge=1, description="How many training images the sample grids show by default.")
    loggers: list[str] = Field(default_factory=lambda: ["jsonl"],
                               description="Where metrics, sample grids and the recipe are logged: registered "
                                           "loggers (`stylekit plugins`), e.g. [jsonl, tensorboard]. Keep jsonl: "
                                           "`stylekit runs` and ablation summaries read its metrics.jsonl.")
    logger_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per logger, e.g. `{tensorboard: {flush_secs: 30}}` "
                                          "(each logger's own model validates them).")


class PerformanceConfig(Section):
    """Speed settings; none of them changes results beyond mixed-precision tolerance."""

    channels_last: bool | None = Field(
        None, description="NHWC memory format for the networks and batches; null: all of them on CUDA, the "
                           "perception networks only on a CPU in bf16 (measured fastest), none otherwise.")
    compile: bool = Field(False, description="torch.compile the transformer and the perception networks "
                                             "(slow first steps, faster after; needs a working compiler).")
    pin_memory: bool | None = Field(None, description="Pinned host memory for batches; null: on for CUDA.")
    prefetch_factor: int = Field(4, ge=1, description="Batches each DataLoader worker prepares ahead.")
    persistent_workers: bool = Field(True, description="Keep DataLoader workers alive (when data.workers > 0).")
    finite_check_every: int | None = Field(
        None, ge=1, description="Check for NaN/inf losses on the host every N steps (one device sync); null: every "
                                "step off-CUDA, every log.every steps on CUDA. A bad step always stops the run "
                                "before any checkpoint, sample or metric is written with non-finite weights.")


class Recipe(Section):
    name: str = Field("run", description="Recipe name; run directories are named after it.")
    description: str = Field("", description="Free text shown in run listings.")
    extends: str | None = Field(None, description="Another recipe this one deep-merges onto (already applied).")
    plugins: list[str] = Field(default_factory=list, description="Plugin files or modules to load.")
    data: DataConfig = Field(..., description="Training images (content photographs).")
    style: StyleConfig = Field(..., description="Style image(s).")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Transformer network: its name and options.")
    backbone: BackboneConfig = Field(default_factory=BackboneConfig, description="Perception backbone.")
    losses: dict[str, dict[str, Any]] = Field(
        ..., description="Loss terms by name: `{weight: …, <term options>}`; `term: NAME` reuses a term under another key.")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="Length, batch size, seed.")
    log: LogConfig = Field(default_factory=LogConfig, description="Metrics, samples and checkpoint cadence.")
    device: str = Field("auto", description="'auto' (cuda, then mps, then cpu), or a torch device string.")
    precision: Literal[PRECISIONS] = Field(  # type: ignore[valid-type]
        "auto", description="'auto': bf16 autocast on CUDA and on CPUs with bf16 units, else fp32.")
    output_dir: str = Field("runs", description="Where run directories are created.")
    presets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named override sets (`{dotted.key: value}`), e.g. per-style weights, "
                                          "since released models of these methods were tuned per style.")
    preset: str | None = Field(None, description="The preset applied (also `--preset NAME`); already applied.")
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig,
                                           description="Memory format, compilation, data loading, sync cadence.")
    #: each component's options as its own validated model, by recipe key (filled by :func:`validate_recipe`)
    _options: dict[str, ComponentOptions] = PrivateAttr(default_factory=dict)

    def components(self) -> list[tuple[str, str, str, str, dict[str, Any]]]:
        """(kind, name, key of the name, key of the options, options) of every component the recipe configures:
        the transformer network, the loss terms (by key; ``term:`` names a reused term), the backbone, the
        loggers."""
        terms = [("loss", str((spec or {}).get("term", key)), f"losses.{key}", f"losses.{key}",
                  {k: v for k, v in (spec or {}).items() if k != "term"}) for key, spec in sorted(self.losses.items())]
        return [("model", self.model.name, "model.name", "model", self.model.options()), *terms,
                ("backbone", self.backbone.name, "backbone.name", "backbone.options", self.backbone.options),
                *(("logger", name, "log.loggers", f"log.logger_options.{name}", self.log.logger_options.get(name) or {})
                  for name in self.log.loggers)]

    def options_at(self, key: str) -> ComponentOptions | dict[str, Any]:
        """A component's options by their recipe key (``losses.style``, ``backbone.options``,
        ``log.logger_options.jsonl``): the typed model :func:`validate_recipe` made, once; for a recipe it did not
        validate, the plain options (the component validates them when built)."""
        if key in self._options:
            return self._options[key]
        return next(options for _, _, _, where, options in self.components() if where == key)


# -- loading ---------------------------------------------------------------

#: recipe keys renamed for one spelling, old dotted key → new (same section). Recipes, presets and ``--set``
#: with the old key work, with a FutureWarning; run folders written with it are read silently.
RENAMED_KEYS = {"style.licence": "style.license"}


def _spelling_warning(old: str, new: str, source: str) -> None:
    warnings.warn(f"{source}: the key {old} is now spelled {new}; the old spelling still works",
                  FutureWarning, stacklevel=4)


def renamed_key(keys: list[str], source: str = "--set") -> list[str]:
    """A dotted key (as a list) under its current name: ``style.licence`` → ``style.license``."""
    for old, new in RENAMED_KEYS.items():
        if keys[:len(old.split("."))] == old.split("."):
            _spelling_warning(old, new, source)
            return new.split(".") + keys[len(old.split(".")):]
    return keys


def upgrade_keys(raw: dict, source: str = "recipe", warn: bool = True) -> dict:
    """``raw`` with every renamed key (:data:`RENAMED_KEYS`) under its new name; ``raw`` itself is unchanged."""
    for old, new in RENAMED_KEYS.items():
        *section, key = old.split(".")
        node = raw
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or key not in node:
            continue
        new_key = new.split(".")[-1]
        if new_key in node:
            raise ConfigError(f"{source}: give {new} only ({old} is its old spelling)")
        if warn:
            _spelling_warning(old, new, source)
        raw = copy.deepcopy(raw)
        node = raw
        for part in section:
            node = node[part]
        node[new_key] = node.pop(key)
    return raw


PATH_KEYS: tuple[tuple[str, ...], ...] = (("data", "root"), ("data", "cache_dir"), ("style", "images"), ("plugins",),
                                          ("log", "sample_images"), ("model", "init"))


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a file path on this system (NUL byte, name too long), or None."""
    if "\0" in value:
        return "contains a NUL character"
    encoded = value.encode("utf-8", "surrogateescape")
    if len(encoded) > 4096 or any(len(part) > 255 for part in encoded.split(b"/")):
        return "is longer than file systems allow (255 bytes per name, 4096 in all)"
    return None


def _check_path_text(key: str, value: Any) -> None:
    if isinstance(value, str) and (problem := path_problem(value)):
        raise ConfigError(f"{key}: {value[:80]!r}{'…' if len(value) > 80 else ''} {problem}; give a real path")


def _resolve_paths(raw: dict, base: Path) -> None:
    def fix(value, key: str):
        _check_path_text(key, value)
        if not isinstance(value, str) or value.startswith(BUILTIN_PREFIX) or Path(value).expanduser().is_absolute():
            return value
        if value.endswith(".py") or "/" in value or "." in Path(value).name or (base / value).exists():
            return str((base / value).resolve())
        return value  # e.g. a module name in `plugins`

    def fix_plugin(value, key: str):
        _check_path_text(key, value)
        file = plugin_file(value, base) if isinstance(value, str) else None
        return str(file.resolve()) if file is not None else value  # `my_pkg.plugin` is a module name

    def fix_all(value, key: str):
        fixer = fix_plugin if key == "plugins" else fix
        return [fixer(v, key) for v in value] if isinstance(value, list) else fixer(value, key)

    presets = raw.get("presets")
    for preset in presets.values() if isinstance(presets, dict) else ():  # presets use dotted keys
        for key in list(preset) if isinstance(preset, dict) else ():
            if isinstance(key, str) and tuple(key.split(".")) in PATH_KEYS:
                preset[key] = fix_all(preset[key], key)
    for path in PATH_KEYS:
        node = raw
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or path[-1] not in node:
            continue
        node[path[-1]] = fix_all(node[path[-1]], ".".join(path))


def absolute_paths(raw: dict, base: Path) -> dict:
    """A copy of recipe mapping ``raw`` with its relative paths made absolute against ``base`` (a recipe file's
    folder; for a recipe given as a mapping, the working folder), as a run folder's config.yaml must hold them."""
    raw = copy.deepcopy(raw)
    _resolve_paths(raw, base)
    return raw


def read_recipe_text(path: Path) -> str:
    """The text of a recipe file: a regular UTF-8 file of at most :data:`MAX_RECIPE_BYTES`."""
    if not path.exists():
        raise ConfigError(f"recipe file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"recipe {path} is not a regular file (a folder or a device?); give a .yaml recipe file")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise ConfigError(f"recipe {path} is {size:,} bytes; recipes are limited to {MAX_RECIPE_BYTES:,} bytes "
                          "(is this really a recipe?)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"recipe {path} cannot be read: {exc.strerror or exc}") from None


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a recipe file, following ``extends:`` chains, with paths made absolute."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise ConfigError(f"recipe {path} extends itself (chain: {' -> '.join(map(str, _seen + (path,)))})")
    if len(_seen) >= MAX_EXTENDS:
        raise ConfigError(f"recipe {_seen[0]}: `extends:` chain longer than {MAX_EXTENDS} recipes")
    raw = safe_yaml_load(read_recipe_text(path), f"recipe {path}") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path} must be a mapping of keys, got {type(raw).__name__}")
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"recipe {path}: keys must be names, got {bad_keys[0]!r}")
    _resolve_paths(raw, path.parent)
    parent = raw.get("extends")
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"recipe {path}: extends must be the path of another recipe, got {parent!r}")
    if parent:
        parent_path = Path(parent).expanduser()
        parent_path = parent_path if parent_path.is_absolute() else path.parent / parent_path
        try:
            raw = deep_merge(load_raw(parent_path, _seen + (path,)), raw)
        except ConfigError as exc:
            raise ConfigError(f"recipe {path}: extends {parent}: {exc}") from None
    raw.setdefault("name", path.stem)
    return raw


def parse_override(text: str, flag: str = "--set") -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], value) as :func:`~stylekit.yamlio.parse_key_value` reads it, the key
    under its current name (:data:`RENAMED_KEYS`)."""
    keys, value = parse_key_value(text, flag)
    return renamed_key(keys, flag), value


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(keys)}: {'.'.join(keys[:i + 1])} is a {type(child).__name__}, "
                                  "not a section")
            node = child
        node[keys[-1]] = value
    return raw


def apply_preset(raw: dict, name: str | None) -> dict:
    """Apply ``presets[name]`` (dotted keys → values) as if each were a ``--set``."""
    name = name or raw.get("preset")
    if not name:
        return raw
    presets = raw.get("presets") or {}
    if not isinstance(presets, dict):
        raise ConfigError(f"presets: must be a mapping of preset names to {{dotted.key: value}}, got {presets!r:.80}")
    if not isinstance(name, str) or name not in presets:
        raise ConfigError(f"unknown preset {name!r}; this recipe's presets are: "
                          f"{', '.join(sorted(map(str, presets))) or '(none)'}")
    if not isinstance(presets[name] or {}, dict):
        raise ConfigError(f"presets.{name}: must be a mapping of dotted keys to values, e.g. "
                          f"{{losses.style.weight: 10}}, got {presets[name]!r:.80}")
    texts = [key_value_text(key, value) for key, value in (presets[name] or {}).items()]
    raw = apply_overrides(raw, texts)
    raw["preset"] = name
    return raw


def select_terms(raw: dict, without: Iterable[str] = (), only: Iterable[str] = ()) -> dict:
    """Drop terms (``--without``) or keep just some (``--only``); unknown names are errors."""
    raw = copy.deepcopy(raw)
    losses = raw.get("losses") or {}
    if not isinstance(losses, dict):
        raise ConfigError(f"losses: must be a mapping of term names to options, got {losses!r:.80}")
    known = sorted(map(str, losses))
    for name in [*without, *only]:
        if name not in losses:
            raise ConfigError(f"unknown loss term {name!r}; this recipe's terms are: {', '.join(known) or '(none)'}")
    only = list(only)
    raw["losses"] = {k: v for k, v in losses.items() if k not in set(without) and (not only or k in only)}
    if not raw["losses"]:
        raise ConfigError("no loss terms left after --without/--only; keep at least one")
    return raw


# -- validation ------------------------------------------------------------

def validate_recipe(raw: dict, registry=None, *, extra_plugins: Iterable[str] = (),
                    overrides: Iterable[str] = ()) -> Recipe:
    """Validate the recipe, then every component's options through the registry (with ``extra_plugins`` loaded,
    ``--plugin``'s); returns it with options filled with defaults. ``overrides``: the ``--set`` texts applied, so
    a term one of them made up is named as such."""
    raw = upgrade_keys(raw)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("invalid recipe:\n" + format_validation_error(exc, model=Recipe)) from None
    for key_path in PATH_KEYS:
        value: Any = recipe
        for part in key_path:
            value = getattr(value, part)
        for item in value if isinstance(value, list) else [value]:
            _check_path_text(".".join(key_path), item)
    components = recipe.components()
    loggers = ", ".join(recipe.log.loggers)
    errors: list[str] = [f"  log.logger_options.{name}: {name!r} is not in log.loggers ({loggers})"
                         for name in recipe.log.logger_options if name not in recipe.log.loggers]
    if not recipe.losses:
        errors.append("  losses: no loss terms; give at least one, e.g. {content: {weight: 1}}")
    extra = [str(file.resolve()) if (file := plugin_file(p)) is not None else str(p) for p in extra_plugins]
    recipe.plugins = list(dict.fromkeys([*recipe.plugins, *extra]))
    registry = registry if registry is not None else get_registry(recipe.plugins)
    for kind, name, name_key, options_key, options in components:
        try:
            cls = registry.get(kind, name, name_key)  # an unknown name is reported under the key that names it
            if kind == "model" and (options := with_style_names(cls, options, recipe.style.images, errors)) is None:
                continue
            recipe._options[options_key] = registry.options(kind, name, options, options_key)
        except OptionsError as exc:
            errors.append(exc.problems)
        except StylekitError as exc:  # an unknown name
            made_up = _unknown_set_term(name, recipe, overrides, registry) if kind == "loss" else None
            if made_up:
                raise ConfigError(made_up) from None
            errors.append(f"  {exc}")
    if errors:
        raise ConfigError("invalid recipe:\n" + "\n".join(errors))
    # the recipe as config.yaml records it: every component's options with their defaults filled in
    dumped = {key: options.model_dump(mode="json") for key, options in recipe._options.items()}
    recipe.losses = {key.removeprefix("losses."): ({"term": name} if f"losses.{name}" != key else {}) | dumped[key]
                     for kind, name, key, _, _ in components if kind == "loss"}
    recipe.backbone.options = dumped["backbone.options"]
    recipe.model = ModelConfig(name=recipe.model.name, init=recipe.model.init, train=recipe.model.train,
                               **dumped["model"])
    recipe.log.logger_options = {name: dumped[f"log.logger_options.{name}"] for name in recipe.log.loggers
                                 if dumped[f"log.logger_options.{name}"] or name in recipe.log.logger_options}
    return recipe


def load_recipe(path: str | Path | None = None, overrides: Iterable[str] = (), *, without: Iterable[str] = (),
                only: Iterable[str] = (), extra_plugins: Iterable[str] = (), raw: dict | None = None,
                registry=None, preset: str | None = None) -> Recipe:
    """Load, apply a preset, override, select terms and validate: the one way the CLI builds a recipe."""
    if raw is None:
        if path is None:
            raise ConfigError("no recipe given")
        raw = load_raw(path)
    raw = apply_preset(raw, preset)
    raw = apply_overrides(raw, overrides)
    raw = select_terms(raw, without, only) if (list(without) or list(only)) else raw
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"plugins: must be a list of plugin .py files or module names, got {plugins!r:.80}")
    return validate_recipe(raw, registry, extra_plugins=extra_plugins, overrides=overrides)


def _unknown_set_term(key: str, recipe: Recipe, overrides: Iterable[str], registry) -> str | None:
    """For a loss term that a ``--set losses.KEY.…`` made up: the message naming both lists of terms."""
    for text in overrides:
        keys, _ = parse_override(text)
        if keys[:2] == ["losses", key]:
            others = sorted(str(k) for k in recipe.losses if k != key)
            return (f"--set {'.'.join(keys)}: unknown loss term {key!r}; this recipe's terms: {', '.join(others)}; "
                    f"registered terms: {', '.join(registry.names('loss'))}")
    return None


def dump_recipe(recipe: Recipe) -> str:
    data = recipe.model_dump(mode="json", exclude={"extends"})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
