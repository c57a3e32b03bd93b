"""``jsonl``: ``RUN/metrics.jsonl``, one JSON line per logged step (the default logger).

``stylekit runs``, ablation summaries, the loss-curve plot and ``stylekit ablate``'s progress read this
file, so it is on unless a recipe's ``log.loggers`` leaves it out.
"""

from __future__ import annotations

import json
from typing import IO

from .base import Logger, StepMetrics


class JsonlLogger(Logger):
    """RUN/metrics.jsonl: each logged step's terms (unweighted and weighted), total and learning rate."""

    name = "jsonl"

    def __init__(self, options=None):
        super().__init__(options)
        self._file: IO[str] | None = None

    def start(self, run, resumed_at):
        if resumed_at is not None:  # lines logged after the checkpoint will be logged again
            run.drop_metrics_after(resumed_at)
        self._file = run.open_metrics()

    def log_metrics(self, metrics: StepMetrics) -> None:
        self._file.write(json.dumps(metrics.row()) + "\n")
        self._file.flush()

    def finalize(self, status):
        if self._file is not None:
            self._file.close()
            self._file = None
