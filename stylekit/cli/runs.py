"""`stylekit runs`: list run folders, or compare runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import StylekitError
from .app import app, console, printable


#: the folder ``stylekit runs`` lists when none is given (where ``stylekit train`` puts runs by default)
DEFAULT_RUNS = Path("runs")


@app.command()
def runs(
    args: Optional[List[str]] = typer.Argument(None, help="DIR (default: runs/), or `compare RUN_A RUN_B …`."),
) -> None:
    """List runs (what changed, progress, final losses, status), or `runs compare A B …` side by side."""
    from ..runs.records import find_runs, read_run
    from ..runs.tables import compare_tables, runs_table

    args = list(args or [])
    if args[:1] == ["compare"]:
        if len(args) < 3:
            raise StylekitError("`stylekit runs compare` needs two or more run directories")
        records = [read_run(_run_dir(Path(a))) for a in args[1:]]
        for table in compare_tables(records):
            console.print(table)
        return
    if len(args) > 1:
        raise StylekitError("give one folder (`stylekit runs DIR`), or `stylekit runs compare A B …`")
    root = Path(args[0]) if args else DEFAULT_RUNS
    if not args and not root.exists():
        console.print(f"No runs yet: there is no {root}/ folder here. Start one with `stylekit train "
                      "recipes/quickstart.yaml`, or list another folder with `stylekit runs DIR`.")
        return
    found = find_runs(root)
    if not found:
        console.print(printable(f"No runs under {root}/ yet."))
        return
    console.print(runs_table([read_run(p) for p in found], title=printable(f"{len(found)} run(s) under {root}/")))


def _run_dir(path: Path) -> Path:
    from ..runs.folder import RUN_MARKERS
    from ..runs.records import is_run_dir

    if not is_run_dir(path):
        raise StylekitError(f"{path} is not a run directory (no {', '.join(RUN_MARKERS)})")
    return path
