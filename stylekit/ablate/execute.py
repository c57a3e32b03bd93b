"""Running a grid: in this process one after another, or as a pool of ``stylekit train`` subprocesses.

SIGTERM (a scheduler stopping the sweep) is handled like Ctrl-C: every run checkpoints where it
stopped, and re-running the same command continues the grid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..runs.folder import RunDir
from ..runs.records import read_run
from .grid import Grid
from .plan import Action, format_duration

def visible_gpus() -> list[str]:
    """CUDA device ids a child may be given (honoring an existing CUDA_VISIBLE_DEVICES)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # pragma: no cover - broken CUDA installs
        return []


def train_command(grid: Grid, action: Action, run_dir: Path) -> list[str]:
    """The ``python -m stylekit train`` command line a parallel job runs.

    A resumed run is given the grid's plugins (the recipe's and ``--plugin``'s) again: they are the
    user's, so its config.yaml may import them (see :func:`stylekit.runs.trust.check_plugins`).
    """
    cmd = [sys.executable, "-m", "stylekit", "train"]
    if action.kind == "resume":
        cmd += ["--resume", str(run_dir)]
        plugins = grid.trusted_plugins
    else:
        cmd += [str(grid.recipe_path), "--run-dir", str(run_dir)]
        for text in grid.full_overrides(action.run):
            cmd += ["--set", text]
        for term in action.run.without:
            cmd += ["--without", term]
        plugins = grid.plugins
    for plugin in plugins:
        cmd += ["--plugin", plugin]
    return cmd + ["--no-progress"]


def prepare_dir(grid: Grid, action: Action, replace: bool) -> Path:
    """Clear leftovers of a run that must start again (its metrics are appended to, so they must go)."""
    run_dir = grid.run_dir(action.run).path
    if action.kind == "restart" and run_dir.is_dir():
        shutil.rmtree(run_dir)
    if action.kind == "conflict" and replace and run_dir.is_dir():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = grid.replaced / f"{run_dir.name}-{stamp}"
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
    """``--jobs 1``: train one run after another in this process (no re-import per run), each with its bar,
    through the session as ``stylekit train`` does."""
    from .. import session

    outcomes = []
    for i, action in enumerate(actions, 1):
        run_dir = grid.run_dir(action.run).path
        console.rule(f"[bold]run {i}/{len(actions)}[/] {action.run.name}  [dim]({action.run.label})[/]")
        started = time.perf_counter()
        try:
            if action.kind == "resume":
                session.resume_run(run_dir, plugins=grid.plugins, trusted=grid.trusted_plugins, console=console,
                                   show_progress=show_progress)
            else:
                session.start_run(grid.recipe_path, grid.full_overrides(action.run), without=action.run.without,
                                  plugins=grid.plugins, run_dir=run_dir, console=console, show_progress=show_progress,
                                  info={"display_name": action.run.name, "grid": str(grid.directory)})
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

    Output goes to ``GRID/logs/NAME.log``; the progress display follows each run's logged metrics.
    Ctrl-C (or SIGTERM) is passed on as SIGINT, so every child checkpoints before the grid stops.
    """
    gpus = visible_gpus()
    logs = grid.logs
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
                    run_dir = grid.run_dir(action.run).path
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
                    run_dir = grid.run_dir(action.run).path
                    step = RunDir(run_dir).last_metrics().get("step", 0)
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
                    color = "green" if outcome.state == "finished" else "red"
                    progress.console.print(f"[{color}]{outcome.state}[/] {action.run.name} "
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


def run_actions(grid: Grid, actions: Sequence[Action], jobs: int, console: Console,
                show_progress: bool = True) -> list[Outcome]:
    """Run ``actions`` (in-process for one job, else in parallel), with SIGTERM handled like Ctrl-C."""
    def on_term(signum, frame):  # a scheduler's SIGTERM: stop like Ctrl-C, so runs checkpoint first
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return (run_in_process(grid, actions, console, show_progress) if jobs == 1
                else run_parallel(grid, actions, jobs, console))
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/] Runs checkpointed where they stopped; run the same command again "
                      "to finish the grid (finished runs are skipped, interrupted ones resume).")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
