"""Runs as rich tables: ``stylekit runs`` (one row a run), ``stylekit runs compare`` (one column a run) and the
ablation summary's cells."""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from rich.table import Table

from .records import MISSING, RunRecord, config_diff

STATE_STYLE = {"finished": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "refused": "red"}


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def term_columns(records: Iterable[RunRecord]) -> list[str]:
    """Every term any run logged, in first-seen order (runs without a term show '–')."""
    return list(dict.fromkeys(k for r in records for k in r.final))


def eval_columns(records: Iterable[RunRecord]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r.eval))


def state_text(record: RunRecord, width: int = 60) -> str:
    style = STATE_STYLE.get(record.state, "")
    text = f"[{style}]{record.state}[/]" if style else record.state
    if record.state in ("failed", "interrupted", "refused") and record.reason:
        reason = record.reason.splitlines()[0]
        text += f": {reason[:width]}{'…' if len(reason) > width else ''}"
    return text


def runs_table(records: Sequence[RunRecord], title: str = "runs") -> Table:
    terms, evals = term_columns(records), eval_columns(records)
    table = Table(title=title)
    for column in ("run", "recipe", "changed", "steps"):
        table.add_column(column, overflow="fold")
    for term in terms:
        table.add_column(term, justify="right")
    for key in evals:
        table.add_column(f"eval {key}", justify="right")
    table.add_column("status", overflow="fold")
    for r in records:
        table.add_row(r.name, r.recipe, r.changes or "–", f"{r.step}/{r.iterations or '?'}",
                      *[fmt(r.final.get(t)) for t in terms], *[fmt(r.eval.get(k)) for k in evals], state_text(r))
    return table


def _value_text(value: Any) -> str:
    if value is MISSING:
        return "[dim](absent)[/]"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def compare_tables(records: Sequence[RunRecord]) -> tuple[Table, Table]:
    """(config differences, final metrics) with one column per run."""
    diff = config_diff([r.config for r in records])
    config_table = Table(title="config differences" if diff else "config differences (none: identical configs)")
    config_table.add_column("key")
    for r in records:
        config_table.add_column(r.name, overflow="fold")
    for key, values in diff.items():
        config_table.add_row(key, *[_value_text(v) for v in values])

    metrics = Table(title="final metrics (unweighted terms at the last logged step)")
    metrics.add_column("")
    for r in records:
        metrics.add_column(r.name, justify="right", overflow="fold")
    metrics.add_row("status", *[state_text(r, 40) for r in records])
    metrics.add_row("steps", *[f"{r.step}/{r.iterations or '?'}" for r in records])
    metrics.add_section()
    for term in term_columns(records):
        metrics.add_row(term, *[fmt(r.final.get(term)) for r in records])
    evals = eval_columns(records)
    if evals:
        metrics.add_section()
        for key in evals:
            metrics.add_row(f"eval {key}", *[fmt(r.eval.get(key)) for r in records])
    return config_table, metrics
