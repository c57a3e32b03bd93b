"""Reading runs back: one :class:`RunRecord` per run folder (status, progress, final losses, evaluation), found
anywhere below a folder. Reading never imports the trainer, so listings work on runs copied from elsewhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import StylekitError
from .folder import STATUS_FILE, RunDir, RunPathError, effective_state, read_json
from .naming import describe_run_changes


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


def _metric_value(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
        return float(value["mean"])  # {mean, ci_low, ci_high, n}: the mean is the summary value
    return None


def read_eval_metrics(run_dir: str | Path) -> dict[str, float]:
    """Summary values of ``RUN/eval/metrics.json`` (its ``summary`` mapping if it has one).

    Accepts ``{metric: value}``, ``{metric: {"mean": …}}`` and, per evaluated source,
    ``{source: {metric: …}}`` (the source named like the run, else the only/first one).
    """
    run = RunDir(run_dir)
    data = read_json(run.inside(run.eval_metrics))
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else data
    if not summary:
        return {}
    direct = {k: _metric_value(v) for k, v in summary.items()}
    if any(v is not None for v in direct.values()):
        return {k: v for k, v in direct.items() if v is not None}
    per_source = {k: v for k, v in summary.items() if isinstance(v, dict)}
    if not per_source:
        return {}
    name = run.name
    source = per_source.get(name) or next((v for k, v in per_source.items() if name in k or k in name),
                                          next(iter(per_source.values())))
    values = {k: _metric_value(v) for k, v in source.items()}
    return {k: v for k, v in values.items() if v is not None}


def read_run(path: str | Path) -> RunRecord:
    run = RunDir(path)
    try:
        info, status, config, row = run.read_info(), run.read_status(), run.read_config(), run.last_metrics()
        evals = read_eval_metrics(run.path)
    except RunPathError as exc:  # listed, not followed
        return RunRecord(path=run.path, name=run.name, state="refused", reason=str(exc))
    state, reason = effective_state(status) if status else ("unknown", f"no {STATUS_FILE}")
    terms = row.get("terms", {}) if isinstance(row.get("terms"), dict) else {}
    return RunRecord(
        path=run.path, name=run.name, recipe=str(info.get("recipe") or config.get("name") or ""),
        changes=describe_run_changes(info), state=state, reason=reason,
        step=max(int(status.get("step") or 0), int(row.get("step") or 0)),  # status.json follows checkpoints; metrics every log
        iterations=int(status.get("iterations") or (config.get("schedule") or {}).get("iterations") or 0),
        final={k: float(v["raw"]) for k, v in terms.items() if isinstance(v, dict) and "raw" in v},
        final_weighted={k: float(v["weighted"]) for k, v in terms.items() if isinstance(v, dict) and "weighted" in v},
        eval=evals, config=config, info=info, status=status)


def is_run_dir(path: Path) -> bool:
    return RunDir(path).holds_run()


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


