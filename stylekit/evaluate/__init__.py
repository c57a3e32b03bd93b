"""``stylekit evaluate``: measure what depth-aware style transfer claims to preserve (depth, edges, saliency).

Two kinds of module live here: the built-in metrics, which are components (:mod:`.builtin_metrics`,
:mod:`.looks`, their maths in :mod:`.functional`), and the evaluation runtime (:mod:`.pipeline`,
:mod:`.runner`, :mod:`.judges`, :mod:`.report`, :mod:`.console`). The registry imports the built-in metrics
from this package, so this face imports nothing itself: each name below is loaded from its module when it is
first used, and building the registry never loads the evaluation runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name → the module (in this package) that defines it
_HOMES = {
    "BUILTIN_METRICS": "builtin_metrics", "EvalNetworks": "builtin_metrics", "all_columns": "builtin_metrics",
    "metrics_markdown": "builtin_metrics", "DEPTH_JUDGES": "judges", "DepthJudge": "judges",
    "EvalResult": "runner", "EvalSettings": "runner", "EvaluationError": "runner", "MIN_RELIABLE_N": "runner",
    "Source": "runner", "compare": "runner", "evaluate": "runner", "open_source": "runner", "summarize": "runner",
    "EvaluationOutput": "pipeline", "depth_judge": "pipeline", "run_evaluation": "pipeline",
    "select_metrics": "pipeline",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
