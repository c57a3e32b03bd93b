"""Grid expansion: ``--vary`` × ``--without-each`` × seeds → validated, de-duplicated, named runs.

A grid lives in one folder: one run folder per configuration (named deterministically from
what changed, so re-launching the same command finds them again), ``grid.json`` (the plan),
``logs/`` (output of parallel runs), ``.replaced/`` (folders ``--replace`` moved away) and
the summary files (:mod:`stylekit.ablate.summary`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..config import Recipe, apply_overrides, dump_recipe, load_raw, load_recipe, parse_override, select_terms
from ..errors import ConfigError
from ..loggers import JsonlLogger
from ..runs.folder import RunDir, atomic_write_text, safe_name
from ..runs.naming import run_name, shorten_name

GRID_FILE = "grid.json"
LOGS_DIR = "logs"
REPLACED_DIR = ".replaced"

@dataclass(frozen=True)
class Vary:
    """One ``--vary KEY=V1,V2,…``: the key path, the parsed values and their text as typed."""

    key: str
    values: tuple[Any, ...]
    texts: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.key.removeprefix("losses.")


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets, so list values work: ``[relu2_2],[relu2_2,relu3_3]``."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def parse_vary(text: str) -> Vary:
    """``losses.depth.weight=0,1,5,10`` → Vary; each value is parsed like a ``--set`` value (YAML)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise ConfigError(f"--vary {text!r}: expected KEY.PATH=V1,V2,…, e.g. losses.depth.weight=0,1,5,10")
    texts = split_values(rest)
    if any(not t for t in texts):
        raise ConfigError(f"--vary {key}: empty value in {rest!r} (values are comma-separated)")
    values = tuple(parse_override(f"{key}={t}")[1] for t in texts)
    seen: dict[str, str] = {}
    for t, v in zip(texts, values):
        canon = json.dumps(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v,
                           sort_keys=True, default=str)
        if canon in seen:
            raise ConfigError(f"--vary {key}: values {seen[canon]!r} and {t!r} are the same value")
        seen[canon] = t
    return Vary(key, values, tuple(texts))


@dataclass
class GridRun:
    """One configuration of the grid."""

    name: str  # run directory name inside the grid folder
    label: str  # what distinguishes it from the other runs, for people ("style.weight=0.3; seed 1")
    values: dict[str, Any]  # vary key → value
    texts: dict[str, str]  # vary key → value as typed
    without: tuple[str, ...]
    seed: int | None
    overrides: list[str]  # this run's own --set's (vary values, seed); the grid's base --set's come first
    config: dict[str, Any] = field(default_factory=dict)  # resolved, as config.yaml will hold it


@dataclass
class Grid:
    recipe_path: Path
    recipe: Recipe  # the base recipe (base --set's applied)
    base_overrides: list[str]
    plugins: list[str]
    vary: list[Vary]
    without_each: list[str]
    seeds: list[int] | None
    runs: list[GridRun]
    merged: list[tuple[str, str]] = field(default_factory=list)  # (dropped combination, identical run kept)
    directory: Path = Path(".")

    @property
    def axes(self) -> list[str]:
        """Parameters people compare along: the varied keys, then 'without' and 'seed' when present."""
        return [v.key for v in self.vary] + (["without"] if self.without_each else []) + \
            (["seed"] if self.seeds else [])

    def full_overrides(self, run: GridRun) -> list[str]:
        return [*self.base_overrides, *run.overrides]

    def run_dir(self, run: GridRun) -> RunDir:
        return RunDir(self.directory / run.name)

    @property
    def logs(self) -> Path:
        return self.directory / LOGS_DIR

    @property
    def replaced(self) -> Path:
        return self.directory / REPLACED_DIR

    @property
    def trusted_plugins(self) -> list[str]:
        """Plugins the user gave (the recipe's and ``--plugin``'s): a resumed grid run may import these."""
        return list(dict.fromkeys([*self.recipe.plugins, *self.plugins]))


def _resolved(recipe_path: Path, overrides: list[str], without: Sequence[str], plugins: Sequence[str],
              registry) -> tuple[Recipe, dict[str, Any]]:
    recipe = load_recipe(recipe_path, overrides, without=list(without), extra_plugins=plugins, registry=registry)
    return recipe, yaml.safe_load(dump_recipe(recipe))


def default_grid_dir(recipe: Recipe, vary: Sequence[Vary], without_each: Sequence[str], seeds: int) -> Path:
    """``OUTPUT_DIR/<recipe>-ablate-<keys>``: the same command always finds the same folder."""
    parts = ["+".join(v.short for v in vary)] if vary else []
    if without_each:
        parts.append("without-each-" + "+".join(without_each))
    if seeds > 1:
        parts.append(f"seeds{seeds}")
    name = shorten_name(safe_name(f"{recipe.name}-ablate-" + "-".join(parts or ["baseline"]), limit=10_000))
    return Path(recipe.output_dir).expanduser() / name


def expand_grid(recipe_path: str | Path, vary: Iterable[str] = (), without_each: Iterable[str] = (), seeds: int = 1,
                overrides: Iterable[str] = (), plugins: Iterable[str] = (), directory: str | Path | None = None) -> Grid:
    """The cross product vary × (baseline + each dropped term) × seeds, validated and de-duplicated.

    Every value is checked against the recipe (and its term's options) before anything runs,
    so a typo fails in a second instead of after hours of sweeping.
    """
    from ..plugins import get_registry

    recipe_path = Path(recipe_path).expanduser().resolve()
    overrides, plugins = list(overrides), list(plugins)
    without_each = list(dict.fromkeys(without_each))
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give 1 or more seeds")
    specs = [parse_vary(v) for v in vary]
    keys = [s.key for s in specs]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--vary {key} is given twice; put all its values in one --vary {key}=A,B,C")
        if key == "schedule.seed" and seeds > 1:
            raise ConfigError("--vary schedule.seed and --seeds both set the seed; use one of them")
    raw = load_raw(recipe_path)
    extra = [str(Path(p).resolve()) if str(p).endswith(".py") else str(p) for p in plugins]
    registry = get_registry(list(dict.fromkeys([*raw.get("plugins", []), *extra])))
    base, _ = _resolved(recipe_path, overrides, (), plugins, registry)
    if without_each:  # names must be the recipe's terms (the error lists them)
        select_terms(apply_overrides(raw, overrides), without=without_each)
    for spec in specs:  # each value on its own first: the error then names exactly which one is wrong
        for text in spec.texts:
            try:
                _resolved(recipe_path, [*overrides, f"{spec.key}={text}"], (), plugins, registry)
            except ConfigError as exc:
                detail = str(exc).removeprefix("invalid recipe:\n")
                raise ConfigError(f"--vary {spec.key}: value {text!r} is not valid for this recipe:\n{detail}") from None

    seed_list = [base.schedule.seed + i for i in range(seeds)] if seeds > 1 else None
    runs: list[GridRun] = []
    merged: list[tuple[str, str]] = []
    by_config: dict[str, GridRun] = {}
    names: set[str] = set()
    for combo in itertools.product(*[list(zip(s.texts, s.values)) for s in specs]):
        for without in [()] + [(t,) for t in without_each]:
            for seed in seed_list or [None]:
                run_overrides = [f"{s.key}={text}" for s, (text, _) in zip(specs, combo)]
                if seed is not None:
                    run_overrides.append(f"schedule.seed={seed}")
                _, config = _resolved(recipe_path, [*overrides, *run_overrides], without, plugins, registry)
                if JsonlLogger.name not in config["log"]["loggers"]:
                    raise ConfigError(f"log.loggers is {config['log']['loggers']}: stylekit ablate summarizes runs "
                                      f"from their metrics.jsonl, so keep {JsonlLogger.name} in it, e.g. "
                                      f"--set log.loggers=[{JsonlLogger.name},tensorboard]")
                label_parts = [f"{s.short}={text}" for s, (text, _) in zip(specs, combo)]
                label_parts += [f"without {t}" for t in without]
                if seed is not None:
                    label_parts.append(f"seed {seed}")
                # named like `stylekit train` with the same --set's and --without would name it
                name = run_name(base.name, [*overrides, *run_overrides], without, preset=base.preset)
                run = GridRun(name=name, label="; ".join(label_parts) or "baseline",
                              values={s.key: v for s, (_, v) in zip(specs, combo)},
                              texts={s.key: t for s, (t, _) in zip(specs, combo)},
                              without=tuple(without), seed=seed, overrides=run_overrides, config=config)
                canon = json.dumps(config, sort_keys=True)
                if canon in by_config:
                    merged.append((run.label, by_config[canon].label))
                    continue
                if name in names:  # different configs, one name (a varied key that names leave out, odd values)
                    run.name = shorten_name(f"{name}-{hashlib.sha1(canon.encode()).hexdigest()[:8]}")
                by_config[canon] = run
                names.add(run.name)
                runs.append(run)
    grid_dir = Path(directory).expanduser() if directory else default_grid_dir(base, specs, without_each, seeds)
    return Grid(recipe_path, base, overrides, plugins, specs, without_each, seed_list, runs, merged,
                grid_dir.resolve())


def write_grid_file(grid: Grid) -> None:
    data = {"recipe_file": str(grid.recipe_path), "recipe": grid.recipe.name, "overrides": grid.base_overrides,
            "plugins": grid.plugins, "vary": {s.key: list(s.texts) for s in grid.vary},
            "without_each": grid.without_each, "seeds": grid.seeds,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runs": [{"name": r.name, "label": r.label, "values": r.values, "without": list(r.without),
                      "seed": r.seed, "overrides": r.overrides} for r in grid.runs]}
    atomic_write_text(grid.directory / GRID_FILE, json.dumps(data, indent=2, default=str) + "\n")
