"""Rich progress and tables for ``stylekit evaluate``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .report import COMPARISON_HEADER, comparison_rows, small_sample_warning, summary_rows, unavailable_text


@contextmanager
def progress_bar(console: Console, enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(image, done, total)`` that drives a rich progress bar (or does nothing)."""
    if not enabled:
        yield lambda image, done, total: None
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


def print_results(console: Console, output) -> None:
    result, summary = output.result, output.summary
    print_header(console, result)
    table = Table(title=f"evaluation: {len(result.images)} image(s); mean [BCa bootstrap 95% CI]; ↑/↓ = better")
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
    for name, text in unavailable_text(result).items():
        console.print(f"[yellow]{name}[/]: {text}", highlight=False)
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} input(s) skipped[/] (listed in the report)")
    files = output.files
    console.print(f"Report: [bold]{files['html']}[/] ({files['markdown'].name}, {files['json'].name}, "
                  f"{files['csv'].name} alongside)")
