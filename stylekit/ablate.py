"""Ablation grids: expand ``--vary`` × ``--without-each`` × seeds into runs, run them, summarise.

A grid lives in one folder: one run directory per configuration (named deterministically
from what changed, so re-launching the same command finds them again), ``grid.json``
(the plan), ``logs/`` (output of parallel runs) and the summary: ``summary.md``,
``summary.csv``, ``contact_sheet.png`` and ``tradeoff.png``. Runs that already finished
with the same resolved config are skipped and interrupted ones resume from their last
checkpoint, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .checkpoint import atomic_write_text, latest_checkpoint
from .config import (Recipe, describe_changes, dump_recipe, load_raw, load_recipe, parse_override, select_terms)
from .errors import ConfigError, StylekitError
from .runs import (RunRecord, read_json, effective_state, eval_columns, fmt, last_metrics, read_run, state_text,
                   term_columns)

GRID_FILE = "grid.json"


# -- the grid ------------------------------------------------------------------

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
    name = re.sub(r"[^\w.=,+\-]", "_", f"{recipe.name}-ablate-" + "-".join(parts or ["baseline"]))[:120]
    return Path(recipe.output_dir).expanduser() / name


def expand_grid(recipe_path: str | Path, vary: Iterable[str] = (), without_each: Iterable[str] = (), seeds: int = 1,
                overrides: Iterable[str] = (), plugins: Iterable[str] = (), directory: str | Path | None = None) -> Grid:
    """The cross product vary × (baseline + each dropped term) × seeds, validated and de-duplicated.

    Every value is checked against the recipe (and its term's options) before anything runs,
    so a typo fails in a second instead of after hours of sweeping.
    """
    from .plugins import get_registry

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
        from .config import apply_overrides

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
                label_parts = [f"{s.short}={text}" for s, (text, _) in zip(specs, combo)]
                label_parts += [f"without {t}" for t in without]
                if seed is not None:
                    label_parts.append(f"seed {seed}")
                name = describe_changes(base.name, [f"{s.key}={text}" for s, (text, _) in zip(specs, combo)], without)
                name += f"-seed{seed}" if seed is not None else ""
                run = GridRun(name=name, label="; ".join(label_parts) or "baseline",
                              values={s.key: v for s, (_, v) in zip(specs, combo)},
                              texts={s.key: t for s, (t, _) in zip(specs, combo)},
                              without=tuple(without), seed=seed, overrides=run_overrides, config=config)
                canon = json.dumps(config, sort_keys=True)
                if canon in by_config:
                    merged.append((run.label, by_config[canon].label))
                    continue
                if name in names:  # two different configs whose names collide (long or odd values)
                    import hashlib

                    run.name = f"{name[:110]}-{hashlib.sha1(canon.encode()).hexdigest()[:8]}"
                by_config[canon] = run
                names.add(run.name)
                runs.append(run)
    grid_dir = Path(directory).expanduser() if directory else default_grid_dir(base, specs, without_each, seeds)
    return Grid(recipe_path, base, overrides, plugins, specs, without_each, seed_list, runs, merged,
                grid_dir.resolve())


# -- what to do for each run ------------------------------------------------------

@dataclass
class Action:
    run: GridRun
    kind: str  # "skip" (finished), "start", "resume", "restart" (leftover without checkpoint), "conflict", "busy"
    detail: str = ""
    steps_left: int = 0


def _same_config(run_dir: Path, config: dict[str, Any]) -> tuple[bool, list[str]]:
    from .runs import config_diff

    try:
        existing = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False, ["config.yaml unreadable"]
    diff = config_diff([existing, config])
    return not diff, list(diff)


def plan_actions(grid: Grid) -> list[Action]:
    """Compare each run with what its directory already holds (resume logic lives here)."""
    actions = []
    iterations = {r.name: int(r.config["schedule"]["iterations"]) for r in grid.runs}
    for run in grid.runs:
        run_dir = grid.directory / run.name
        total = iterations[run.name]
        if not run_dir.is_dir() or not any(run_dir.iterdir()):
            actions.append(Action(run, "start", "", total))
            continue
        same, diff = _same_config(run_dir, run.config) if (run_dir / "config.yaml").is_file() else (False, [])
        status = read_json(run_dir / "status.json")
        state, _ = effective_state(status) if status else ("unknown", "")
        ckpt = latest_checkpoint(run_dir)
        if (run_dir / "config.yaml").is_file() and not same:
            shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            actions.append(Action(run, "conflict", f"existing run has a different config ({shown})", total))
        elif state == "running":
            actions.append(Action(run, "busy", f"running in process {status.get('pid', '?')}", 0))
        elif state == "finished" and same:
            actions.append(Action(run, "skip", "finished", 0))
        elif ckpt is not None and same:
            step = int(ckpt.name.removeprefix("step_"))
            actions.append(Action(run, "resume", f"{state} at step {status.get('step', step)}; "
                                                 f"resumes from step {step}", total - step))
        else:
            actions.append(Action(run, "restart", f"{state}, no checkpoint: starts again", total))
    return actions


# -- time estimate -------------------------------------------------------------------

@dataclass
class Calibration:
    build_s: float  # building networks, reading style targets (once per run)
    step_s: float  # one optimizer step
    steps: int
    device: str

    def run_seconds(self, steps: int, process_start_s: float = 0.0) -> float:
        return process_start_s + self.build_s + steps * self.step_s


def calibrate(grid: Grid, run: GridRun | None = None, steps: int = 3) -> Calibration:
    """Time building and a few training steps of one configuration (the first to run), in this process."""
    import torch

    from .data import collate
    from .plugins import get_registry
    from .train import Trainer

    run = run or grid.runs[0]
    recipe = load_recipe(grid.recipe_path, grid.full_overrides(run), without=list(run.without),
                         extra_plugins=grid.plugins)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(recipe, Path(tmp) / "calibration", registry=get_registry(recipe.plugins),
                          console=Console(file=io.StringIO()), show_progress=False)
        sync = (lambda: torch.cuda.synchronize()) if trainer.device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        trainer.build()
        build_s = time.perf_counter() - t0
        bs, n = recipe.schedule.batch_size, len(trainer.dataset)
        batch = collate([trainer.dataset[(i % n, i)] for i in range(bs)])["image"]
        trainer.model.train()
        trainer.train_step(batch)  # warm-up: allocator, kernels, autotuning
        sync()
        t0 = time.perf_counter()
        for _ in range(max(1, steps)):
            trainer.train_step(batch)
        sync()
        step_s = (time.perf_counter() - t0) / max(1, steps)
    return Calibration(build_s, step_s, max(1, steps), str(trainer.device))


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- showing the plan -------------------------------------------------------------------

ACTION_STYLE = {"skip": "green", "start": "cyan", "resume": "yellow", "restart": "yellow", "conflict": "red",
                "busy": "magenta"}


def plan_table(grid: Grid, actions: Sequence[Action]) -> Table:
    table = Table(title=f"ablation grid: {grid.recipe.name} → {grid.directory}")
    table.add_column("#", justify="right")
    table.add_column("run", overflow="fold")
    for spec in grid.vary:
        table.add_column(spec.short, justify="right")
    if grid.without_each:
        table.add_column("without")
    if grid.seeds:
        table.add_column("seed", justify="right")
    table.add_column("terms (weight)", overflow="fold")
    table.add_column("action", overflow="fold")
    for i, action in enumerate(actions, 1):
        run = action.run
        terms = ", ".join(f"{k}×{v.get('weight', 1):g}" for k, v in run.config["losses"].items())
        style = ACTION_STYLE.get(action.kind, "")
        text = f"[{style}]{action.kind}[/]" + (f" ({action.detail})" if action.detail and action.kind != "skip" else "")
        table.add_row(str(i), run.name, *[run.texts[s.key] for s in grid.vary],
                      *([", ".join(run.without) or "–"] if grid.without_each else []),
                      *([str(run.seed)] if grid.seeds else []), terms, text)
    return table


def plan_summary(grid: Grid, actions: Sequence[Action], calibration: Calibration | None, jobs: int,
                 parallel: int) -> str:
    counts = {k: sum(a.kind == k for a in actions) for k in ACTION_STYLE}
    sizes = [f"{len(s.values)} {s.short}" for s in grid.vary]
    if grid.without_each:
        sizes.append(f"{1 + len(grid.without_each)} term sets (all, " +
                     ", ".join(f"without {t}" for t in grid.without_each) + ")")
    if grid.seeds:
        sizes.append(f"{len(grid.seeds)} seeds")
    lines = [f"{len(grid.runs)} runs = " + (" × ".join(sizes) or "1 run") +
             (f" − {len(grid.merged)} duplicate(s)" if grid.merged else "") +
             f": {counts['start'] + counts['restart']} to start, {counts['resume']} to resume, "
             f"{counts['skip']} finished"]
    for dropped, kept in grid.merged[:3]:
        lines.append(f"  [dim]{dropped!r} has the same resolved config as {kept!r}: run once[/]")
    if counts["conflict"]:
        lines.append(f"[red]{counts['conflict']} run folder(s) hold a different config[/]: use another -o GRID_DIR, "
                     "or --replace to move them to .replaced/ and run them again")
    if counts["busy"]:
        lines.append(f"[magenta]{counts['busy']} run(s) are being trained by another process[/]: left alone")
    if calibration is not None:
        todo = [a for a in actions if a.kind in ("start", "restart", "resume")]
        start = 0.0 if jobs == 1 else 6.0  # a subprocess imports torch & co. first
        total = sum(calibration.run_seconds(a.steps_left, start) for a in todo)
        lines.append(f"estimated time: {format_duration(total / max(1, parallel))} "
                     f"({calibration.step_s * 1000:.0f} ms/step and {calibration.build_s:.1f} s setup on "
                     f"{calibration.device}, timed on the first configuration"
                     + (f"; {parallel} runs at a time" if parallel > 1 else "")
                     + (f"; {jobs} jobs share the CPU cores, so no faster than one" if jobs > 1 and parallel == 1
                        else "") + ")")
    return "\n".join(lines)


# -- running -------------------------------------------------------------------------------

def visible_gpus() -> list[str]:
    """CUDA device ids a child may be given (honouring an existing CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - broken CUDA installs
        return []


def train_command(grid: Grid, action: Action, run_dir: Path) -> list[str]:
    """The ``python -m stylekit train`` command line a parallel job runs."""
    cmd = [sys.executable, "-m", "stylekit", "train"]
    if action.kind == "resume":
        cmd += ["--resume", str(run_dir)]
    else:
        cmd += [str(grid.recipe_path), "--run-dir", str(run_dir)]
        for text in grid.full_overrides(action.run):
            cmd += ["--set", text]
        for term in action.run.without:
            cmd += ["--without", term]
    for plugin in grid.plugins:
        cmd += ["--plugin", plugin]
    return cmd + ["--no-progress"]


def _prepare_dir(grid: Grid, action: Action, replace: bool) -> Path:
    """Clear leftovers of a run that must start again (metrics.jsonl is appended to, so it must go)."""
    run_dir = grid.directory / action.run.name
    if action.kind == "restart" and run_dir.is_dir():
        shutil.rmtree(run_dir)
    if action.kind == "conflict" and replace and run_dir.is_dir():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = grid.directory / ".replaced" / f"{run_dir.name}-{stamp}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run_dir), str(target))
    return run_dir


@dataclass
class Outcome:
    name: str
    state: str
    reason: str = ""
    seconds: float = 0.0


def _outcome_from_disk(run_dir: Path, fallback_reason: str = "") -> Outcome:
    record = read_run(run_dir)
    state, reason = record.state, record.reason
    if state in ("running", "unknown"):
        state, reason = "failed", fallback_reason or reason
    return Outcome(run_dir.name, state, reason)


def run_in_process(grid: Grid, actions: Sequence[Action], console: Console, show_progress: bool = True) -> list[Outcome]:
    """``--jobs 1``: train one run after another in this process (no re-import per run), each with its bar."""
    from .plugins import get_registry
    from .train import Trainer

    outcomes = []
    for i, action in enumerate(actions, 1):
        run_dir = grid.directory / action.run.name
        console.rule(f"[bold]run {i}/{len(actions)}[/] {action.run.name}  [dim]({action.run.label})[/]")
        started = time.perf_counter()
        try:
            if action.kind == "resume":
                recipe = load_recipe(run_dir / "config.yaml", extra_plugins=grid.plugins)
                info: dict[str, Any] = {}
            else:
                overrides = grid.full_overrides(action.run)
                recipe = load_recipe(grid.recipe_path, overrides, without=list(action.run.without),
                                     extra_plugins=grid.plugins)
                info = {"recipe_file": str(grid.recipe_path), "overrides": overrides,
                        "without": list(action.run.without), "only": [],
                        "display_name": describe_changes(recipe.name, overrides, action.run.without),
                        "grid": str(grid.directory)}
            Trainer(recipe, run_dir, registry=get_registry(recipe.plugins), console=console,
                    resume=action.kind == "resume", run_info=info, show_progress=show_progress).fit()
            outcomes.append(Outcome(action.run.name, "finished", "", time.perf_counter() - started))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one broken configuration must not stop the sweep
            console.print(f"[red]run {action.run.name} failed:[/] {type(exc).__name__}: {exc}")
            outcome = _outcome_from_disk(run_dir, f"{type(exc).__name__}: {exc}")
            outcome.seconds = time.perf_counter() - started
            outcomes.append(outcome)
    return outcomes


def run_parallel(grid: Grid, actions: Sequence[Action], jobs: int, console: Console,
                 poll_s: float = 0.5) -> list[Outcome]:
    """``--jobs N``: N ``stylekit train`` subprocesses at a time, one GPU each when several are visible.

    Output goes to ``GRID/logs/NAME.log``; the progress display follows each run's metrics.jsonl.
    Ctrl-C (or SIGTERM) is passed on as SIGINT, so every child checkpoints before the grid stops.
    """
    gpus = visible_gpus()
    logs = grid.directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending = deque(actions)
    active: dict[int, tuple[Action, subprocess.Popen, Any, int, float]] = {}  # slot → (action, proc, log, task, t0)
    outcomes: list[Outcome] = []
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
    try:
        with progress:
            overall = progress.add_task(f"[bold]grid[/] ({jobs} jobs)", total=len(actions))
            while pending or active:
                for slot in range(jobs):
                    if slot in active or not pending:
                        continue
                    action = pending.popleft()
                    run_dir = grid.directory / action.run.name
                    env = dict(os.environ, PYTHONUNBUFFERED="1")
                    if gpus:
                        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
                    elif "OMP_NUM_THREADS" not in os.environ:  # N CPU jobs share the cores instead of fighting
                        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
                    log = open(logs / f"{action.run.name}.log", "a")
                    log.write(f"\n=== {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                              f"{' '.join(train_command(grid, action, run_dir))}\n")
                    log.flush()
                    # own session: a terminal's Ctrl-C reaches only this process, which passes on exactly one
                    # SIGINT (a second one could interrupt the child's final checkpoint)
                    proc = subprocess.Popen(train_command(grid, action, run_dir), stdout=log,
                                            stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
                    gpu = f" gpu {env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
                    task = progress.add_task(f"{action.run.name}{gpu}",
                                             total=int(action.run.config["schedule"]["iterations"]))
                    active[slot] = (action, proc, log, task, time.perf_counter())
                time.sleep(poll_s)
                for slot, (action, proc, log, task, t0) in list(active.items()):
                    run_dir = grid.directory / action.run.name
                    step = last_metrics(run_dir / "metrics.jsonl").get("step", 0)
                    progress.update(task, completed=step)
                    if proc.poll() is None:
                        continue
                    log.close()
                    del active[slot]
                    outcome = _outcome_from_disk(run_dir, f"exit code {proc.returncode}; see "
                                                          f"{logs / (action.run.name + '.log')}: "
                                                          + _log_tail(logs / f"{action.run.name}.log"))
                    outcome.seconds = time.perf_counter() - t0
                    outcomes.append(outcome)
                    progress.remove_task(task)
                    progress.advance(overall)
                    colour = "green" if outcome.state == "finished" else "red"
                    progress.console.print(f"[{colour}]{outcome.state}[/] {action.run.name} "
                                           f"({format_duration(outcome.seconds)})"
                                           + (f": {outcome.reason.splitlines()[0]}" if outcome.reason else ""))
    except KeyboardInterrupt:
        for action, proc, log, _, _ in active.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.time() + 120
        for action, proc, log, _, _ in active.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        raise
    return outcomes


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def write_grid_file(grid: Grid) -> None:
    data = {"recipe_file": str(grid.recipe_path), "recipe": grid.recipe.name, "overrides": grid.base_overrides,
            "plugins": grid.plugins, "vary": {s.key: list(s.texts) for s in grid.vary},
            "without_each": grid.without_each, "seeds": grid.seeds,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runs": [{"name": r.name, "label": r.label, "values": r.values, "without": list(r.without),
                      "seed": r.seed, "overrides": r.overrides} for r in grid.runs]}
    atomic_write_text(grid.directory / GRID_FILE, json.dumps(data, indent=2, default=str) + "\n")


# -- the summary ---------------------------------------------------------------------------

def summary_rows(grid: Grid, records: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table (plain text: shared by the terminal, Markdown and CSV)."""
    terms, evals = term_columns(records), eval_columns(records)
    header = ["run", *[s.short for s in grid.vary]]
    header += ["without"] if grid.without_each else []
    header += ["seed"] if grid.seeds else []
    header += ["status", "steps", *terms, *[f"eval {k}" for k in evals]]
    rows = []
    for run, rec in zip(grid.runs, records):
        row = [run.name, *[run.texts[s.key] for s in grid.vary]]
        row += [", ".join(run.without) or "–"] if grid.without_each else []
        row += [str(run.seed)] if grid.seeds else []
        status = rec.state + (f": {rec.reason.splitlines()[0][:80]}" if rec.state != "finished" and rec.reason else "")
        row += [status, f"{rec.step}/{rec.iterations or '?'}"]
        row += [fmt(rec.final.get(t)) for t in terms] + [fmt(rec.eval.get(k)) for k in evals]
        rows.append(row)
    return header, rows


def summary_table(grid: Grid, records: Sequence[RunRecord]) -> Table:
    """The terminal version: '#' (as in the plan table) instead of the long folder names, to fit a terminal."""
    header, rows = summary_rows(grid, records)
    n_values = len(term_columns(records)) + len(eval_columns(records))
    table = Table(title=f"{grid.recipe.name}: final unweighted losses", caption=f"# as in the plan; folders in {grid.directory}/")
    table.add_column("#", justify="right")
    for i, column in enumerate(header[1:], 1):
        numeric = i >= len(header) - n_values
        table.add_column(column, justify="right" if numeric else "left", no_wrap=numeric or column == "steps",
                         overflow="fold")
    for i, (rec, row) in enumerate(zip(records, rows), 1):
        row = [str(i), *row[1:]]
        row[header.index("status")] = state_text(rec, 50)
        table.add_row(*row)
    return table


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary_files(grid: Grid, records: Sequence[RunRecord]) -> tuple[Path, Path]:
    header, rows = summary_rows(grid, records)
    md = grid.directory / "summary.md"
    vary = "; ".join(f"{s.key} ∈ {{{', '.join(s.texts)}}}" for s in grid.vary)
    intro = [f"# Ablation grid: {grid.recipe.name}", "",
             f"Recipe `{grid.recipe_path}`" + (f" with `--set {' '.join(grid.base_overrides)}`"
                                               if grid.base_overrides else "") + ".",
             *([f"Varied: {vary}."] if vary else []),
             *([f"Each term dropped in turn: {', '.join(grid.without_each)}."] if grid.without_each else []),
             *([f"Seeds: {', '.join(map(str, grid.seeds))}."] if grid.seeds else []),
             "", "Final **unweighted** term values (mean over the last logging interval); "
                 "`eval …` columns come from `RUN/eval/metrics.json` where `stylekit evaluate` was run.", ""]
    pictures = ["", "![contact sheet](contact_sheet.png)", "", "![trade-off](tradeoff.png)", ""]
    atomic_write_text(md, "\n".join(intro) + "\n" + _markdown(header, rows) + "\n".join(pictures))
    # CSV: numbers unformatted, so spreadsheets and pandas get full precision
    terms, evals = term_columns(records), eval_columns(records)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", "label", *[s.key for s in grid.vary], "without", "seed", "state", "reason", "step",
                     "iterations", *terms, *[f"eval.{k}" for k in evals]])
    for run, rec in zip(grid.runs, records):
        writer.writerow([run.name, run.label, *[run.texts[s.key] for s in grid.vary], "+".join(run.without),
                         "" if run.seed is None else run.seed, rec.state, rec.reason.replace("\n", " "), rec.step,
                         rec.iterations, *["" if rec.final.get(t) is None else repr(rec.final[t]) for t in terms],
                         *["" if rec.eval.get(k) is None else repr(rec.eval[k]) for k in evals]])
    csv_path = grid.directory / "summary.csv"
    atomic_write_text(csv_path, buf.getvalue())
    return md, csv_path


def contact_images(grid: Grid, source: Path | None, count: int) -> list[Path]:
    """``--contact-images`` (a folder or file), else the recipe's sample images, else the first training images."""
    from .data import list_images

    if source is not None:
        files = list_images(source)
    elif grid.recipe.log.sample_images:
        files = [Path(p) for p in grid.recipe.log.sample_images]
    else:
        files = list_images(grid.recipe.data.root, grid.recipe.data.extensions)
    return files[:count]


def contact_sheet(grid: Grid, records: Sequence[RunRecord], images: Sequence[Path], out: Path,
                  size: int = 256, device: str = "cpu") -> Path:
    """Rows = runs (labelled with what varies), columns = the same images stylised by each run."""
    from PIL import Image

    from .checkpoint import load_model
    from .data import load_image
    from .runtime import pick_device
    from .stylize import stylize_tensor
    from .viz import image_grid

    inputs = [load_image(p, size) for p in images]
    rows: list[list[Any]] = [[img[0] for img in inputs]]
    titles = ["content"]
    target = pick_device(device)
    for run, rec in zip(grid.runs, records):
        # what varies, then the final unweighted terms: the sheet reads on its own, without the table
        label = run.label.replace("; ", "\n") + "".join(f"\n {k} {v:.4g}" for k, v in list(rec.final.items())[:5])
        if latest_checkpoint(rec.path) is None:
            rows.append([Image.new("RGB", (size, size), (225, 225, 225)) for _ in inputs])
            titles.append(f"{label}\n({rec.state}, no model)")
            continue
        model = load_model(rec.path).to(target)
        rows.append([stylize_tensor(model, img)[0] for img in inputs])
        titles.append(label + ("" if rec.state == "finished" else f"\n({rec.state} at {rec.step})"))
    cell = min(size, 256)
    grid_image = image_grid(rows, column_titles=[p.stem[:24] for p in images], row_titles=titles, cell=cell,
                            title=f"{grid.recipe.name}: each row is one run, each column one input image")
    grid_image.save(out)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tradeoff_plot(grid: Grid, records: Sequence[RunRecord], out: Path) -> Path | None:
    """Final unweighted losses (and eval metrics) against each varied parameter; mean ± std over seeds.

    One row of panels per parameter, one panel per metric. Runs that differ in other
    parameters are separate lines, so a 2-D sweep reads as a family of curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [(t, "final") for t in term_columns(records)] + [(k, "eval") for k in eval_columns(records)]
    params = [s.key for s in grid.vary] + (["without"] if grid.without_each else [])
    if not metrics or not params:
        return None

    def value_text(run: GridRun, param: str) -> str:
        if param == "without":
            return "without " + "+".join(run.without) if run.without else "all terms"
        return run.texts[param]

    def group_label(others: list[str], key: tuple) -> str:
        return "; ".join(v if p == "without" else f"{p.removeprefix('losses.')}={v}" for p, v in zip(others, key))

    fig, axes = plt.subplots(len(params), len(metrics), figsize=(3.4 * len(metrics) + 0.6, 3.0 * len(params) + 0.8),
                             squeeze=False)
    seeds_note = f"mean ± std over {len(grid.seeds)} seeds" if grid.seeds else "one seed"
    for row, param in enumerate(params):
        others = [p for p in params if p != param]
        numeric = param != "without" and all(_is_number(r.values[param]) for r in grid.runs)
        categories = list(dict.fromkeys(value_text(r, param) for r in grid.runs))
        groups: dict[tuple, list[tuple[GridRun, RunRecord]]] = {}
        for run, rec in zip(grid.runs, records):
            groups.setdefault(tuple(value_text(run, p) for p in others), []).append((run, rec))
        legend: dict[str, Any] = {}
        for col, (metric, source) in enumerate(metrics):
            ax = axes[row][col]
            any_point = False
            for g_index, (group_key, members) in enumerate(groups.items()):
                by_x: dict[Any, list[float]] = {}
                for run, rec in members:
                    value = (rec.final if source == "final" else rec.eval).get(metric)
                    if value is None or not math.isfinite(value) or rec.step == 0:
                        continue
                    x = float(run.values[param]) if numeric else categories.index(value_text(run, param))
                    by_x.setdefault(x, []).append(value)
                if not by_x:
                    continue
                any_point = True
                xs = sorted(by_x)
                means = [sum(by_x[x]) / len(by_x[x]) for x in xs]
                stds = [(sum((v - m) ** 2 for v in by_x[x]) / max(1, len(by_x[x]) - 1)) ** 0.5 if len(by_x[x]) > 1
                        else 0.0 for x, m in zip(xs, means)]
                colour = f"C{g_index % 10}"  # one colour per group in every panel
                line = ax.errorbar(xs, means, yerr=stds if any(stds) else None, marker="o", ms=4, capsize=3,
                                   lw=1.5, color=colour)
                legend.setdefault(group_label(others, group_key), line)
                if any(stds) and numeric and len(xs) > 1:
                    lo = [m - s for m, s in zip(means, stds)]
                    hi = [m + s for m, s in zip(means, stds)]
                    ax.fill_between(xs, lo, hi, alpha=0.15, color=colour)
            if not any_point:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="grey")
            if numeric:
                xs_all = sorted({float(r.values[param]) for r in grid.runs})
                positive = [x for x in xs_all if x > 0]
                if positive and max(positive) / min(positive) >= 20:
                    if len(positive) == len(xs_all):
                        ax.set_xscale("log")
                    elif min(xs_all) >= 0:
                        ax.set_xscale("symlog", linthresh=min(positive))
                ax.set_xticks(xs_all)
                ax.set_xticklabels(list(dict.fromkeys(r.texts[param] for r in sorted(
                    grid.runs, key=lambda r: float(r.values[param])))), rotation=0)
                ax.minorticks_off()
            else:
                ax.set_xticks(range(len(categories)))
                ax.set_xticklabels(categories, rotation=20 if max(map(len, categories)) > 8 else 0,
                                   ha="right" if max(map(len, categories)) > 8 else "center")
                ax.set_xlim(-0.5, len(categories) - 0.5)
            ys = [v for rec in records for v in [(rec.final if source == "final" else rec.eval).get(metric)]
                  if v is not None and math.isfinite(v)]
            if ys and min(ys) > 0 and max(ys) / min(ys) > 30:
                ax.set_yscale("log")
            ax.set_title(metric if source == "final" else f"eval: {metric}", fontsize=10)
            ax.set_xlabel(param.removeprefix("losses."), fontsize=9)
            if col == 0:
                ax.set_ylabel("final unweighted value", fontsize=9)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        if len(legend) > 1:  # outside the last panel, so it never hides points
            axes[row][-1].legend(list(legend.values()), list(legend), fontsize=8, loc="upper left",
                                 bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle(f"{grid.recipe.name}: final losses vs the varied parameters ({seeds_note})", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def summarize(grid: Grid, console: Console, contact_source: Path | None = None, contact_count: int = 4,
              contact_size: int = 256) -> list[RunRecord]:
    """Read every run back from disk and write summary.md/.csv, contact_sheet.png and tradeoff.png."""
    records = [read_run(grid.directory / r.name) for r in grid.runs]
    write_summary_files(grid, records)
    written = ["summary.md", "summary.csv"]
    try:
        images = contact_images(grid, contact_source, contact_count)
        if images and any(latest_checkpoint(r.path) for r in records):
            contact_sheet(grid, records, images, grid.directory / "contact_sheet.png", contact_size)
            written.append("contact_sheet.png")
    except StylekitError as exc:
        console.print(f"[yellow]contact sheet skipped:[/] {exc}")
    if tradeoff_plot(grid, records, grid.directory / "tradeoff.png"):
        written.append("tradeoff.png")
    console.print(summary_table(grid, records))
    console.print(f"Written to {grid.directory}: " + ", ".join(written))
    return records


# -- the whole command ---------------------------------------------------------------------

def ablate(grid: Grid, *, jobs: int = 1, dry_run: bool = False, estimate: bool = True, replace: bool = False,
           summary_only: bool = False, console: Console | None = None, contact_source: Path | None = None,
           contact_count: int = 4, contact_size: int = 256, show_progress: bool = True,
           calibrate_fn: Callable[..., Calibration] = calibrate) -> list[Outcome]:
    """Show the plan, run what is missing, write the summary. Returns what happened to each run started."""
    console = console or Console()
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more")
    actions = plan_actions(grid)
    gpus = visible_gpus() if jobs > 1 else []
    parallel = min(jobs, len(gpus)) if gpus else 1
    todo = [a for a in actions if a.kind in ("start", "restart", "resume") or (a.kind == "conflict" and replace)]
    calibration = None
    if estimate and todo and not summary_only:
        with console.status("timing a few steps of the first configuration…"):
            calibration = calibrate_fn(grid, todo[0].run)
    console.print(plan_table(grid, actions))
    console.print(plan_summary(grid, actions, calibration, jobs, parallel))
    if dry_run:
        return []
    conflicts = [a for a in actions if a.kind == "conflict"]
    if conflicts and not replace:
        names = ", ".join(a.run.name for a in conflicts[:3])
        raise ConfigError(f"{len(conflicts)} run folder(s) in {grid.directory} hold a different config than this "
                          f"grid would run ({names}…: {conflicts[0].detail}). Use another -o GRID_DIR, or --replace "
                          "to move them to .replaced/ and run them again.")
    grid.directory.mkdir(parents=True, exist_ok=True)
    write_grid_file(grid)
    outcomes: list[Outcome] = []
    if todo and not summary_only:
        for action in todo:
            _prepare_dir(grid, action, replace)
            if action.kind == "conflict":
                action.kind = "start"
        def on_term(signum, frame):  # a scheduler's SIGTERM: stop like Ctrl-C, so runs checkpoint first
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            outcomes = (run_in_process(grid, todo, console, show_progress) if jobs == 1
                        else run_parallel(grid, todo, jobs, console))
        except KeyboardInterrupt:
            console.print("[yellow]Interrupted.[/] Runs checkpointed where they stopped; run the same command again "
                          "to finish the grid (finished runs are skipped, interrupted ones resume).")
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
    summarize(grid, console, contact_source, contact_count, contact_size)
    failed = [o for o in outcomes if o.state != "finished"]
    for o in failed:
        console.print(f"[red]{o.state}:[/] {o.name}: {o.reason.splitlines()[0] if o.reason else ''}")
    return outcomes
