"""`stylekit train`, `stylekit config` and `stylekit ablate`: commands that take a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import StylekitError
from .app import (OfflineOption, PluginOption, WeightsDirOption, app, console, err_console, split_list,
                  weights_env)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (not needed with --resume)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE (repeatable)."),
    plugin: Optional[List[str]] = PluginOption,
    without: Optional[List[str]] = typer.Option(None, "--without", help="Drop a loss term (repeatable)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Keep only these terms (comma-separated)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Apply one of the recipe's named presets."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this run directory; "
                                          "--set/--without/--only then change it from the resumed step on (recorded "
                                          "in the run folder and shown by `stylekit runs`)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Exact run directory (default: OUTPUT_DIR/NAME, "
                                           "or NAME-2, NAME-3… when that folder holds anything)."),
    trust_run_plugins: bool = typer.Option(False, "--trust-run-plugins", help="With --resume: also import plugins "
                                           "the run's recipe lists that are neither given with --plugin nor "
                                           "installed (code that came with the run folder)."),
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (for logs)."),
) -> None:
    """Train a transformer network on a recipe, or continue a run (one writer per run folder at a time)."""
    from .. import distributed, session
    from ..runs.folder import RUN_CONTENTS
    from ..run_handle import RunInterrupted

    weights_env(weights_dir, offline)
    overrides, without_, only_ = list(set_ or []), split_list(without), split_list(only)
    if resume is not None:
        for given, flag in ((recipe, "a recipe"), (preset, "--preset"), (run_dir, "--run-dir")):
            if given is not None:
                raise StylekitError(f"--resume continues {resume} with its own recipe; {flag} cannot be given "
                                    "with it (change the resumed run with --set/--without/--only)")
    elif recipe is None:
        raise StylekitError("give a recipe, e.g. `stylekit train recipes/quickstart.yaml`, or --resume RUN_DIR")
    elif trust_run_plugins:
        raise StylekitError("--trust-run-plugins only applies to --resume (a recipe's plugins are yours)")
    ctx = distributed.init_from_env()  # torchrun: join the process group; rank 0 names the run
    try:
        if resume is not None:
            run = session.resume_run(resume, overrides, without=without_, only=only_, plugins=plugin or [],
                                     trust_run_plugins=trust_run_plugins, console=err_console,
                                     show_progress=not no_progress)
        else:
            run = session.start_run(recipe, overrides, without=without_, only=only_, preset=preset,
                                    plugins=plugin or [], run_dir=run_dir, console=err_console,
                                    show_progress=not no_progress)
    except RunInterrupted as stop:
        if ctx.is_main:
            err_console.print(str(stop), style="yellow", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        distributed.shutdown()
    if not ctx.is_main:
        return
    table = Table(title=escape(str(run.path)))  # each term's last value, the steps, the time, skipped images
    for column, justify in (("term", "left"), ("unweighted", "right"), ("weighted", "right")):
        table.add_column(column, justify=justify)
    for key, value in run.final.items():
        table.add_row(key, f"{value['raw']:.4g}", f"{value['weighted']:.4g}")
    table.add_section()
    table.add_row("steps", str(run.steps), "")
    table.add_row("time", f"{run.seconds:.0f} s", "")
    table.add_row("skipped images", str(len({s.split(': ', 1)[0] for s in run.skipped_images})), "")
    console.print(table)
    console.print(f"Run directory: {run.path} ({RUN_CONTENTS})", markup=False, highlight=False)
    console.print(f"Stylize with: stylekit stylize {run.path} IMAGE -o OUT.png", markup=False, highlight=False)


@app.command()
def config(
    recipe: Path = typer.Argument(..., help="Recipe YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE (repeatable)."),
    plugin: Optional[List[str]] = PluginOption,
    without: Optional[List[str]] = typer.Option(None, "--without", help="Drop a loss term (repeatable)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Keep only these terms (comma-separated)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Apply one of the recipe's named presets."),
) -> None:
    """Print the fully resolved recipe (extends, preset, overrides and defaults applied)."""
    from ..config import dump_recipe, load_recipe

    console.print(dump_recipe(load_recipe(recipe, set_ or [], without=split_list(without), only=split_list(only),
                                          extra_plugins=plugin or [], preset=preset)), markup=False, highlight=False,
                  soft_wrap=True)  # never wrap: a wrapped long path would change the YAML's value



@app.command()
def ablate(
    recipe: Path = typer.Argument(..., help="Recipe YAML."),
    vary: Optional[List[str]] = typer.Option(None, "--vary", help="KEY.PATH=V1,V2,… (repeatable; the grid is the "
                                             "cross product), e.g. losses.depth.weight=0,1,5,10."),
    without_each: Optional[List[str]] = typer.Option(None, "--without-each", help="Also run with each of these "
                                                     "terms dropped in turn (comma-separated)."),
    seeds: int = typer.Option(1, "--seeds", help="Repeat every configuration with this many seeds."),
    arm: Optional[List[str]] = typer.Option(None, "--arm", help="'NAME: KEY=V1,V2; without=TERM; seeds=N': a line of "
                                            "configurations (its own --vary axes, its dropped terms, its seeds; "
                                            "default --seeds), repeatable; e.g. --arm 'johnson: without=depth; "
                                            "losses.content.weight=1,2,4' --arm 'depth: losses.depth.weight=2,5,10'. "
                                            "`stylekit evaluate --groups-from GRID` compares the arms."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE for every run."),
    plugin: Optional[List[str]] = PluginOption,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Grid folder (default: "
                                          "OUTPUT_DIR/<recipe>-ablate-<varied keys>)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time (>1: `stylekit train` subprocesses, one GPU "
                             "each when several are visible)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Skip timing a few steps for the estimate."),
    replace: bool = typer.Option(False, "--replace", help="Runs whose folder holds a different config: move the "
                                 "old folder to GRID/.replaced/ and run again."),
    summary_only: bool = typer.Option(False, "--summary-only", help="Run nothing; rewrite the summary (e.g. after "
                                      "`stylekit evaluate`)."),
    contact_images: Optional[Path] = typer.Option(None, "--contact-images", help="Images for the contact sheet "
                                                  "(default: the recipe's log.sample_images, else the first "
                                                  "training images)."),
    contact_count: int = typer.Option(4, "--contact-count", help="How many images the contact sheet shows."),
    contact_size: int = typer.Option(256, "--contact-size", help="Longer side of contact sheet inputs (pixels)."),
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
) -> None:
    """Run a grid of ablations (vary × without-each × seeds, or arms × their settings × seeds) and summarize it:
    table, contact sheet, trade-off plot.

    Re-running the same command skips finished runs and resumes interrupted ones.
    """
    from ..ablate import ablate as run_ablation
    from ..ablate import expand_grid

    weights_env(weights_dir, offline)
    grid = expand_grid(recipe, vary or [], split_list(without_each), seeds, set_ or [], plugin or [], output,
                       arms=arm or [])
    try:
        outcomes = run_ablation(grid, jobs=jobs, dry_run=dry_run, estimate=not no_estimate, replace=replace,
                                summary_only=summary_only, console=console, contact_source=contact_images,
                                contact_count=contact_count, contact_size=contact_size)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # the hint to re-run has been printed
    if any(o.state != "finished" for o in outcomes):
        raise typer.Exit(1)


