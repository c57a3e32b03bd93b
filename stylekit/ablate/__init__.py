"""Ablation grids: expand ``--vary`` × ``--without-each`` × seeds (or ``--arm``s) into runs, run them, summarize.

- :mod:`.grid`: the grid (parsing ``--vary``, expansion, validation, de-duplication, names);
- :mod:`.plan`: what each run needs given its folder (start, skip, resume…) and the time estimate;
- :mod:`.execute`: running the runs in-process or as a subprocess pool, with signal handling;
- :mod:`.summary` and :mod:`.pictures`: the summary files, contact sheet and trade-off plot.

Runs that already finished with the same resolved config are skipped and interrupted ones resume
from their last checkpoint, so an interrupted sweep continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.console import Console

from ..errors import ConfigError
from .execute import Outcome, prepare_dir, run_actions, run_in_process, run_parallel, train_command, visible_gpus
from .grid import GRID_FILE, Arm, Grid, GridRun, Vary, default_grid_dir, expand_grid, parse_arm, parse_vary, \
    split_values, write_grid_file
from .pictures import contact_images, contact_sheet, tradeoff_plot
from .plan import Action, Calibration, calibrate, format_duration, plan_actions, plan_summary, plan_table
from .summary import summarize, summary_rows, summary_table, write_summary_files

__all__ = ["Action", "Arm", "Calibration", "GRID_FILE", "Grid", "GridRun", "Outcome", "Vary", "ablate", "calibrate",
           "contact_images", "contact_sheet", "default_grid_dir", "expand_grid", "format_duration", "parse_vary",
           "parse_arm", "plan_actions", "plan_summary", "plan_table", "prepare_dir", "run_actions", "run_in_process",
           "run_parallel", "split_values", "summarize", "summary_rows", "summary_table", "tradeoff_plot",
           "train_command", "visible_gpus", "write_grid_file", "write_summary_files"]


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
                          f"to move them to {grid.replaced.name}/ and run them again.")
    grid.directory.mkdir(parents=True, exist_ok=True)
    write_grid_file(grid)
    outcomes: list[Outcome] = []
    if todo and not summary_only:
        for action in todo:
            prepare_dir(grid, action, replace)
            if action.kind == "conflict":
                action.kind = "start"
        outcomes = run_actions(grid, todo, jobs, console, show_progress)
    summarize(grid, console, contact_source, contact_count, contact_size)
    failed = [o for o in outcomes if o.state != "finished"]
    for o in failed:
        console.print(f"[red]{o.state}:[/] {o.name}: {o.reason.splitlines()[0] if o.reason else ''}")
    return outcomes
