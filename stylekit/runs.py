"""Reading run directories back: what a run was, how far it got, what it reached.

Everything here reads only the files a run writes (``config.yaml``, ``run.json``,
``status.json``, ``metrics.jsonl`` and, once ``stylekit evaluate`` has been run,
``eval/metrics.json``), so listings work on runs copied from another machine and
never import the trainer.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from rich.table import Table

from .errors import StylekitError

RUN_MARKERS = ("run.json", "status.json", "config.yaml")


@dataclass
class RunRecord:
    """One run directory as read from disk; missing files leave fields empty."""

    path: Path
    name: str
    recipe: str = ""
    changes: str = ""
    state: str = "unknown"
    reason: str = ""
    step: int = 0
    iterations: int = 0
    final: dict[str, float] = field(default_factory=dict)  # unweighted term values at the last logged step
    final_weighted: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_metrics(path: Path) -> dict[str, Any]:
    """The last complete line of ``metrics.jsonl`` (read from the end: files of long runs are large)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a half-written or cut line
        if isinstance(row, dict) and "step" in row:
            return row
    return {}


def _metric_value(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
        return float(value["mean"])  # {mean, ci_low, ci_high, n}: the mean is the summary value
    return None


def read_eval_metrics(run_dir: Path) -> dict[str, float]:
    """Summary values of ``RUN/eval/metrics.json`` (its ``summary`` mapping if it has one).

    Accepts ``{metric: value}``, ``{metric: {"mean": …}}`` and, per evaluated source,
    ``{source: {metric: …}}`` (the source named like the run, else the only/first one).
    """
    data = read_json(Path(run_dir) / "eval" / "metrics.json")
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else data
    if not summary:
        return {}
    direct = {k: _metric_value(v) for k, v in summary.items()}
    if any(v is not None for v in direct.values()):
        return {k: v for k, v in direct.items() if v is not None}
    per_source = {k: v for k, v in summary.items() if isinstance(v, dict)}
    if not per_source:
        return {}
    name = Path(run_dir).name
    source = per_source.get(name) or next((v for k, v in per_source.items() if name in k or k in name),
                                          next(iter(per_source.values())))
    values = {k: _metric_value(v) for k, v in source.items()}
    return {k: v for k, v in values.items() if v is not None}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def effective_state(status: dict[str, Any]) -> tuple[str, str]:
    """(state, reason); a 'running' run whose process is gone on this host reads as interrupted."""
    state, reason = str(status.get("state", "unknown")), str(status.get("reason", ""))
    if state == "running":
        pid, host = status.get("pid"), status.get("host")
        if isinstance(pid, int) and (host in (None, socket.gethostname())) and not process_alive(pid):
            return "interrupted", f"process {pid} ended without a final status (killed?) at step {status.get('step', '?')}"
    return state, reason


def describe_run_changes(info: dict[str, Any]) -> str:
    """'without tv; style.weight=2' from run.json (what the command line changed)."""
    parts = [f"without {t}" for t in info.get("without") or []]
    if info.get("only"):
        parts.append("only " + ",".join(info["only"]))
    for text in info.get("overrides") or []:
        key, _, value = str(text).partition("=")
        parts.append(f"{key.removeprefix('losses.')}={value}")
    return "; ".join(parts)


def read_run(path: str | Path) -> RunRecord:
    path = Path(path)
    info = read_json(path / "run.json")
    status = read_json(path / "status.json")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    row = last_metrics(path / "metrics.jsonl")
    state, reason = effective_state(status) if status else ("unknown", "no status.json")
    terms = row.get("terms", {}) if isinstance(row.get("terms"), dict) else {}
    return RunRecord(
        path=path, name=path.name, recipe=str(info.get("recipe") or config.get("name") or ""),
        changes=describe_run_changes(info), state=state, reason=reason,
        step=max(int(status.get("step") or 0), int(row.get("step") or 0)),  # status.json is written at start/end only
        iterations=int(status.get("iterations") or (config.get("schedule") or {}).get("iterations") or 0),
        final={k: float(v["raw"]) for k, v in terms.items() if isinstance(v, dict) and "raw" in v},
        final_weighted={k: float(v["weighted"]) for k, v in terms.items() if isinstance(v, dict) and "weighted" in v},
        eval=read_eval_metrics(path), config=config if isinstance(config, dict) else {}, info=info, status=status)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run directories at or below ``root`` (a grid folder, ``runs/``…), sorted by path."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise StylekitError(f"{root} is not a folder (give a run directory or a folder of runs, e.g. runs/)")
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt = []
        for folder in level:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                (found if is_run_dir(child) else nxt).append(child)
        level = nxt
    return sorted(found)


# -- presentation ------------------------------------------------------------

STATE_STYLE = {"finished": "green", "running": "cyan", "interrupted": "yellow", "failed": "red"}


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
    if record.state in ("failed", "interrupted") and record.reason:
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


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config → ``{"losses.style.weight": 0.3, …}``; lists stay values."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data} if prefix else {}


MISSING = object()


def config_diff(configs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dotted keys whose values differ between configs (absent keys count as different)."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return {k: [f.get(k, MISSING) for f in flat] for k in keys
            if len({json.dumps(f.get(k, "<absent>"), sort_keys=True, default=str) for f in flat}) > 1}


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
