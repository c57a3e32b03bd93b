"""Rich progress and tables for ``stylekit evaluate``."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import group_report
from .report import COMPARISON_HEADER, comparison_rows, small_sample_warning, summary_rows, unavailable_text


@contextmanager
def progress_bar(console: Console, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(image, done, total)`` that drives a rich progress bar or, disabled (logs), prints one plain
    line at each tenth of the work, so a long evaluation in the background still says how far it is."""
    if not enabled:
        started = time.perf_counter()
        printed = {0}

        def log_line(image: str, done: int, total: int) -> None:
            tenth = done * 10 // max(total, 1)
            if tenth not in printed:
                printed.add(tenth)
                console.print(f"evaluated {done}/{total} ({tenth * 10} %, {time.perf_counter() - started:.0f} s)",
                              highlight=False)

        yield log_line
        return
    with Progress(TextColumn("[bold]evaluate[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("", total=None)

        def update(image: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=image)

        yield update


def print_header(console: Console, result) -> None:
    """The report's header: whether each judge is independent of what the models were trained through."""
    for warning, text in result.header:
        console.print(f"[bold yellow]{escape(text)}[/]" if warning else escape(text), highlight=False)


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=escape(title))
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[escape(cell) for cell in row])
    return table


def print_groups(console: Console, result, analysis: dict) -> None:
    """A grouped evaluation: the groups' means, their differences from the baseline, the frontier verdict."""
    console.print(_table(f"groups: mean over seeds and images [hierarchical bootstrap 95% CI]; {len(result.images)} "
                         "image(s)", ["metric", *[g["name"] for g in analysis["groups"]]],
                         group_report.summary_rows(result, analysis)))
    if analysis["comparison"]:
        console.print(_table(f"each group − {analysis['baseline']} (paired on images, seeds resampled)",
                             group_report.DIFFERENCE_HEADER, group_report.difference_rows(analysis["comparison"])))
    for note in analysis["notes"]:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    trade = analysis.get("tradeoff")
    if trade and trade["gaps"]:
        console.print(_table(f"{trade['y']} against {trade['x']}: gap to the {trade['reference_arm']} arm's frontier",
                             group_report.GAP_HEADER, group_report.gap_rows(trade)))
        console.print(_table("per arm", group_report.ARM_HEADER, group_report.arm_rows(trade)))
    if trade and trade.get("sentence"):
        console.print(f"[bold]{escape(trade['sentence'])}[/]", highlight=False)


def print_results(console: Console, output) -> None:
    print_header(console, output.result)
    if output.groups is not None:
        print_groups(console, output.result, output.groups)
    else:
        _print_sources(console, output)
    _print_footer(console, output)


def _print_sources(console: Console, output) -> None:
    """Per source its means, and the candidate − baseline comparison."""
    result, summary = output.result, output.summary
    table = Table(title=escape(f"evaluation: {len(result.images)} image(s); mean [BCa bootstrap 95% CI]; ↑/↓ = better"))
    table.add_column("metric")
    for source in result.sources:
        table.add_column(source, overflow="fold")
    for row in summary_rows(result, summary):
        table.add_row(*row)
    console.print(table)
    if output.comparison:
        c = output.comparison
        ctable = Table(title=f"{c['candidate']} − {c['baseline']} (paired, BCa bootstrap 95% CI)")
        for column in COMPARISON_HEADER:
            ctable.add_column(column)
        for row in comparison_rows(c["rows"]):
            color = {"better": "green", "worse": "red"}.get(row[-1].split(" ")[0])
            ctable.add_row(*row[:-1], f"[{color}]{row[-1]}[/]" if color else row[-1])
        console.print(ctable)
        warning = small_sample_warning(c["rows"])
        if warning:
            console.print(f"[bold yellow]{warning}[/]", highlight=False)


def _print_footer(console: Console, output) -> None:
    """What did not run, what was skipped, and where the report is."""
    result = output.result
    for name, text in unavailable_text(result).items():
        console.print(f"[yellow]{name}[/]: {text}", highlight=False)
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} input(s) skipped[/] (listed in the report)")
    files = output.files
    console.print(f"Report: [bold]{files['html']}[/] ({files['markdown'].name}, {files['json'].name}, "
                  f"{files['csv'].name} alongside)")
