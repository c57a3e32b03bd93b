"""Training loggers as a plugin kind (hook ``stylekit_loggers``); a recipe picks them with ``log.loggers``.

Built in: ``jsonl`` (``RUN/metrics.jsonl``, the default) and ``tensorboard`` (extra ``stylekit[tensorboard]``).
A W&B or MLflow logger is a small plugin: see docs/writing-a-plugin.md.
"""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import Logger, LoggerOptions, LoggerSet, StepMetrics
from .jsonl import JsonlLogger
from .tensorboard import TensorBoardLogger

__all__ = ["JsonlLogger", "Logger", "LoggerOptions", "LoggerSet", "StepMetrics", "TensorBoardLogger"]


@hookimpl
def stylekit_loggers():
    return [JsonlLogger, TensorBoardLogger]
