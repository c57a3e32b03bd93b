"""Resume planning and the time estimate: what each grid run needs, and how long the grid will take.

Each run is compared with what its folder already holds: finished runs with the same resolved
config are skipped, interrupted ones resume from their last checkpoint, a folder being written by
another process is left alone, and a folder holding a different config is a conflict.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from ..config import load_recipe
from ..session import config_changes
from .grid import Grid, GridRun


@dataclass
class Action:
    run: GridRun
    kind: str  # "skip" (finished), "start", "resume", "restart" (leftover without checkpoint), "conflict", "busy"
    detail: str = ""
    steps_left: int = 0


def plan_actions(grid: Grid) -> list[Action]:
    """Compare each run with what its directory already holds (resume logic lives here)."""
    actions = []
    for run in grid.runs:
        folder = grid.run_dir(run)
        total = int(run.config["schedule"]["iterations"])
        writer = folder.writer() if folder.path.is_dir() else None
        if writer is not None:  # checked first: a folder being written is never touched
            actions.append(Action(run, "busy", f"being written by process {writer.pid}", 0))
            continue
        if folder.is_empty():
            actions.append(Action(run, "start", "", total))
            continue
        has_config = folder.config.is_file()
        existing = folder.read_config() if has_config else {}
        diff = config_changes(existing, run.config) if existing else [f"{folder.config.name} unreadable"]
        same = has_config and not diff
        state, _ = folder.state()
        ckpt = folder.latest_checkpoint()
        if has_config and not same:
            shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            actions.append(Action(run, "conflict", f"existing run has a different config ({shown})", total))
        elif state == "running":  # e.g. on another host, whose lock this one cannot see
            actions.append(Action(run, "busy", f"running in process {folder.read_status().get('pid', '?')}", 0))
        elif state == "finished" and same:
            actions.append(Action(run, "skip", "finished", 0))
        elif ckpt is not None and same:
            step = folder.step_of(ckpt) or 0
            actions.append(Action(run, "resume", f"{state} at step {folder.read_status().get('step', step)}; "
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

    from ..data import collate
    from ..plugins import get_registry
    from ..trainer import Trainer

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
    if grid.arms:
        table.add_column("arm")
    for spec in grid.columns:
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
        table.add_row(str(i), run.name, *([run.arm or "–"] if grid.arms else []),
                      *[run.texts.get(s.key, "–") for s in grid.columns],
                      *([", ".join(run.without) or "–"] if grid.without_each else []),
                      *([str(run.config["schedule"]["seed"])] if grid.seeds else []), terms, text)
    return table


def plan_summary(grid: Grid, actions: Sequence[Action], calibration: Calibration | None, jobs: int,
                 parallel: int) -> str:
    counts = {k: sum(a.kind == k for a in actions) for k in ACTION_STYLE}
    sizes = [f"{len(s.values)} {s.short}" for s in grid.vary]
    if grid.without_each:
        sizes.append(f"{1 + len(grid.without_each)} term sets (all, " +
                     ", ".join(f"without {t}" for t in grid.without_each) + ")")
    if grid.arms:
        per_arm = {name: sum(r.arm == name for r in grid.runs) for name in dict.fromkeys(a.name for a in grid.arms)}
        sizes.append(f"{len(per_arm)} arms (" + ", ".join(f"{name}: {n}" for name, n in per_arm.items()) + ")")
    elif grid.seeds:
        sizes.append(f"{len(grid.seeds)} seeds")
    lines = [f"{len(grid.runs)} runs = " + ((" × " if not grid.arms else " in ").join(sizes) or "1 run") +
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
