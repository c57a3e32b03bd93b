"""The grid's summary: a table in the terminal, ``summary.md`` and ``summary.csv``, and the pictures.

Everything is read back from the run folders, so the summary can be rewritten at any time
(``--summary-only``, e.g. after ``stylekit evaluate`` wrote ``RUN/eval/``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import StylekitError
from ..runs.folder import EVAL_DIR, EVAL_METRICS_FILE, RunDir, atomic_write_text
from ..runs.records import RunRecord, read_run
from ..runs.tables import eval_columns, fmt, state_text, term_columns
from .grid import Grid
from .pictures import contact_images, contact_sheet, tradeoff_plot

SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
CONTACT_SHEET = "contact_sheet.png"
TRADEOFF = "tradeoff.png"

def summary_rows(grid: Grid, records: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table (plain text: shared by the terminal, Markdown and CSV)."""
    terms, evals = term_columns(records), eval_columns(records)
    header = ["run", *(["arm"] if grid.arms else []), *[s.short for s in grid.columns]]
    header += ["without"] if grid.without_each else []
    header += ["seed"] if grid.seeds else []
    header += ["status", "steps", *terms, *[f"eval {k}" for k in evals]]
    rows = []
    for run, rec in zip(grid.runs, records):
        row = [run.name, *([run.arm or "–"] if grid.arms else []), *[run.texts.get(s.key, "–") for s in grid.columns]]
        row += [", ".join(run.without) or "–"] if grid.without_each else []
        row += [str(run.config["schedule"]["seed"])] if grid.seeds else []
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
    md = grid.directory / SUMMARY_MD
    vary = "; ".join(f"{s.key} ∈ {{{', '.join(s.texts)}}}" for s in grid.vary)
    arms = "; ".join(f"{a.name}: " + ", ".join([f"{v.key} ∈ {{{', '.join(v.texts)}}}" for v in a.vary]
                                               + [f"without {t}" for t in a.without]) for a in grid.arms)
    intro = [f"# Ablation grid: {grid.recipe.name}", "",
             f"Recipe `{grid.recipe_path}`" + (f" with `--set {' '.join(grid.base_overrides)}`"
                                               if grid.base_overrides else "") + ".",
             *([f"Varied: {vary}."] if vary else []),
             *([f"Arms: {arms}."] if arms else []),
             *([f"Each term dropped in turn: {', '.join(grid.without_each)}."] if grid.without_each else []),
             *([f"Seeds: {', '.join(map(str, grid.seeds))}."] if grid.seeds else []),
             "", "Final **unweighted** term values (mean over the last logging interval); "
                 f"`eval …` columns come from `RUN/{EVAL_DIR}/{EVAL_METRICS_FILE}` where `stylekit evaluate` was run.", ""]
    pictures = ["", f"![contact sheet]({CONTACT_SHEET})", "", f"![trade-off]({TRADEOFF})", ""]
    atomic_write_text(md, "\n".join(intro) + "\n" + _markdown(header, rows) + "\n".join(pictures))
    # CSV: numbers unformatted, so spreadsheets and pandas get full precision
    terms, evals = term_columns(records), eval_columns(records)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run", "label", "arm", *[s.key for s in grid.columns], "without", "seed", "state", "reason", "step",
                     "iterations", *terms, *[f"eval.{k}" for k in evals]])
    for run, rec in zip(grid.runs, records):
        writer.writerow([run.name, run.label, run.arm or "", *[run.texts.get(s.key, "") for s in grid.columns],
                         "+".join(run.without),
                         "" if run.seed is None else run.seed, rec.state, rec.reason.replace("\n", " "), rec.step,
                         rec.iterations, *["" if rec.final.get(t) is None else repr(rec.final[t]) for t in terms],
                         *["" if rec.eval.get(k) is None else repr(rec.eval[k]) for k in evals]])
    csv_path = grid.directory / SUMMARY_CSV
    atomic_write_text(csv_path, buf.getvalue())
    return md, csv_path


def summarize(grid: Grid, console: Console, contact_source: Path | None = None, contact_count: int = 4,
              contact_size: int = 256) -> list[RunRecord]:
    """Read every run back from disk and write the summary files, the contact sheet and the trade-off plot."""
    records = [read_run(grid.run_dir(r).path) for r in grid.runs]
    write_summary_files(grid, records)
    written = [SUMMARY_MD, SUMMARY_CSV]
    try:
        images = contact_images(grid, contact_source, contact_count)
        if images and any(RunDir(r.path).latest_checkpoint() for r in records):
            contact_sheet(grid, records, images, grid.directory / CONTACT_SHEET, contact_size)
            written.append(CONTACT_SHEET)
    except StylekitError as exc:
        console.print(f"[yellow]contact sheet skipped:[/] {escape(str(exc))}", highlight=False)
    if tradeoff_plot(grid, records, grid.directory / TRADEOFF):
        written.append(TRADEOFF)
    console.print(summary_table(grid, records))
    console.print(f"Written to {grid.directory}: " + ", ".join(written))
    return records
