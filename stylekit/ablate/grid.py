"""Grid expansion: ``--vary`` × ``--without-each`` × seeds → validated, de-duplicated, named runs; or arms
(``--arm``), each its own small grid of configurations × seeds, for comparing lines of configurations.

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


@dataclass(frozen=True)
class Arm:
    """One ``--arm 'NAME: KEY=V1,V2; without=TERM; seeds=N'``: a line of configurations (its own ``--vary``
    axes, crossed), with terms dropped and its own number of seeds (default: ``--seeds``)."""

    name: str
    vary: tuple[Vary, ...] = ()
    without: tuple[str, ...] = ()
    seeds: int | None = None


ARM_EXAMPLE = "--arm 'johnson: without=depth; losses.content.weight=1,2,4' --arm 'depth: losses.depth.weight=2,5,10'"


def parse_arm(text: str) -> Arm:
    """``NAME: KEY=V1,V2; KEY=V; without=T1,T2; seeds=N`` → Arm (items separated by ';')."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in "/=;, "):
        raise ConfigError(f"--arm {text!r}: expected NAME: KEY=V1,V2; without=TERM; seeds=N (a NAME without '/', "
                          f"'=', ';', ',' or spaces), e.g. {ARM_EXAMPLE}")
    vary, without, seeds = [], (), None
    for item in (i.strip() for i in rest.split(";")):
        if not item:
            continue
        key, _, value = item.partition("=")
        if key.strip() == "without":
            without = tuple(t.strip() for t in value.split(",") if t.strip())
        elif key.strip() == "seeds":
            try:
                seeds = int(value)
            except ValueError:
                seeds = 0
            if seeds < 1:
                raise ConfigError(f"--arm {name}: seeds={value.strip()!r}: give a whole number, 1 or more")
        else:
            try:
                vary.append(parse_vary(item))
            except ConfigError as exc:
                raise ConfigError(f"--arm {name}: {exc}") from None
    keys = [v.key for v in vary]
    if len(set(keys)) < len(keys) or "schedule.seed" in keys:
        raise ConfigError(f"--arm {name}: each key once, and no schedule.seed (seeds=N sets the seeds)")
    return Arm(name, tuple(vary), without, seeds)


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
    arm: str | None = None  # the --arm it belongs to
    #: its configuration within the arm: the label without the arm's name, its dropped terms and the seed (the
    #: runs of one setting are the seeds `stylekit evaluate --groups-from` groups together)
    setting: str = ""


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
    arms: list[Arm] = field(default_factory=list)

    @property
    def columns(self) -> list[Vary]:
        """Every varied key, the grid's and the arms' (a run outside an arm that varies a key shows '–')."""
        return list({v.key: v for v in [*self.vary, *(v for arm in self.arms for v in arm.vary)]}.values())

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


def default_grid_dir(recipe: Recipe, vary: Sequence[Vary], without_each: Sequence[str], seeds: int,
                     arms: Sequence[Arm] = ()) -> Path:
    """``OUTPUT_DIR/<recipe>-ablate-<keys>``: the same command always finds the same folder."""
    parts = [f"arms-{'+'.join(dict.fromkeys(a.name for a in arms))}"] if arms else []
    parts += ["+".join(v.short for v in vary)] if vary else []
    if without_each:
        parts.append("without-each-" + "+".join(without_each))
    if seeds > 1:
        parts.append(f"seeds{seeds}")
    name = shorten_name(safe_name(f"{recipe.name}-ablate-" + "-".join(parts or ["baseline"]), limit=10_000))
    return Path(recipe.output_dir).expanduser() / name


def expand_grid(recipe_path: str | Path, vary: Iterable[str] = (), without_each: Iterable[str] = (), seeds: int = 1,
                overrides: Iterable[str] = (), plugins: Iterable[str] = (), directory: str | Path | None = None,
                arms: Iterable[str] = ()) -> Grid:
    """The cross product vary × (baseline + each dropped term) × seeds, validated and de-duplicated; with
    ``arms`` (``--arm``), per arm: vary × its own axes × its seeds, with its terms dropped.

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
    arm_list = [parse_arm(a) for a in arms]
    if arm_list and without_each:
        raise ConfigError("--without-each and --arm do not combine: an arm drops its own terms (--arm "
                          "'NAME: without=TERM; …'), so give the dropped-term variant as an arm of its own")
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
    for arm in arm_list:
        if {v.key for v in arm.vary} & set(keys):
            raise ConfigError(f"--arm {arm.name} varies a key --vary also varies; give it in one place")
        if arm.without:
            select_terms(apply_overrides(raw, overrides), without=list(arm.without))
    checks = [("--vary", spec, ()) for spec in specs]
    checks += [(f"--arm {arm.name}:", spec, arm.without) for arm in arm_list for spec in arm.vary]
    for flag, spec, without in checks:
        for text in spec.texts:  # each value on its own first: the error then names exactly which one is wrong
            try:
                _resolved(recipe_path, [*overrides, f"{spec.key}={text}"], without, plugins, registry)
            except ConfigError as exc:
                detail = str(exc).removeprefix("invalid recipe:\n")
                raise ConfigError(f"{flag} {spec.key}: value {text!r} is not valid for this recipe:\n{detail}") from None

    runs: list[GridRun] = []
    merged: list[tuple[str, str]] = []
    by_config: dict[str, GridRun] = {}
    names: set[str] = set()
    all_seeds: set[int] = set()
    for arm in arm_list or [None]:
        arm_specs = [*specs, *(arm.vary if arm is not None else ())]
        count = arm.seeds if arm is not None and arm.seeds is not None else seeds
        seed_list = [base.schedule.seed + i for i in range(count)] if count > 1 else None
        all_seeds.update(seed_list or [])
        term_sets = [arm.without] if arm is not None else [()] + [(t,) for t in without_each]
        combos = itertools.product(*[list(zip(s.texts, s.values)) for s in arm_specs])
        for combo, without, seed in itertools.product(combos, term_sets, seed_list or [None]):
            run_overrides = [f"{s.key}={text}" for s, (text, _) in zip(arm_specs, combo)]
            if seed is not None:
                run_overrides.append(f"schedule.seed={seed}")
            _, config = _resolved(recipe_path, [*overrides, *run_overrides], without, plugins, registry)
            if JsonlLogger.name not in config["log"]["loggers"]:
                raise ConfigError(f"log.loggers is {config['log']['loggers']}: stylekit ablate summarizes runs "
                                  f"from their metrics.jsonl, so keep {JsonlLogger.name} in it, e.g. "
                                  f"--set log.loggers=[{JsonlLogger.name},tensorboard]")
            setting = [f"{s.short}={text}" for s, (text, _) in zip(arm_specs, combo)]
            setting += [f"without {t}" for t in without] if arm is None else []
            label_parts = ([arm.name] if arm is not None else []) + setting
            label_parts += [f"without {t}" for t in without] if arm is not None else []
            if seed is not None:
                label_parts.append(f"seed {seed}")
            # named like `stylekit train` with the same --set's and --without would name it
            name = run_name(base.name, [*overrides, *run_overrides], without, preset=base.preset)
            run = GridRun(name=name, label="; ".join(label_parts) or "baseline",
                          values={s.key: v for s, (_, v) in zip(arm_specs, combo)},
                          texts={s.key: t for s, (t, _) in zip(arm_specs, combo)},
                          without=tuple(without), seed=seed, overrides=run_overrides, config=config,
                          arm=arm.name if arm is not None else None, setting="; ".join(setting))
            canon = json.dumps(config, sort_keys=True)
            if canon in by_config:
                merged.append((run.label, by_config[canon].label))
                continue
            if name in names:  # different configs, one name (a varied key that names leave out, odd values)
                run.name = shorten_name(f"{name}-{hashlib.sha1(canon.encode()).hexdigest()[:8]}")
            by_config[canon] = run
            names.add(run.name)
            runs.append(run)
    grid_dir = (Path(directory).expanduser() if directory
                else default_grid_dir(base, specs, without_each, seeds, arm_list))
    return Grid(recipe_path, base, overrides, plugins, specs, without_each, sorted(all_seeds) or None, runs, merged,
                grid_dir.resolve(), arm_list)


def write_grid_file(grid: Grid) -> None:
    data = {"recipe_file": str(grid.recipe_path), "recipe": grid.recipe.name, "overrides": grid.base_overrides,
            "plugins": grid.plugins, "vary": {s.key: list(s.texts) for s in grid.vary},
            "without_each": grid.without_each, "seeds": grid.seeds,
            **({"arms": [{"name": a.name, "vary": {v.key: list(v.texts) for v in a.vary}, "without": list(a.without),
                          "seeds": a.seeds} for a in grid.arms]} if grid.arms else {}),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runs": [{"name": r.name, "label": r.label, "values": r.values, "without": list(r.without),
                      "seed": r.seed, "overrides": r.overrides, "setting": r.setting,
                      **({"arm": r.arm} if r.arm is not None else {})} for r in grid.runs]}
    atomic_write_text(grid.directory / GRID_FILE, json.dumps(data, indent=2, default=str) + "\n")
