"""``tensorboard``: event files in ``RUN/tensorboard/`` through ``torch.utils.tensorboard.SummaryWriter``.

Needs the ``tensorboard`` package (``pip install 'stylekit[tensorboard]'``). Watch a run, or every run
under ``runs/``, with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import yaml
from pydantic import Field

from ..errors import StylekitError
from .base import Logger, LoggerOptions, StepMetrics

INSTALL_HINT = "pip install 'stylekit[tensorboard]'"


class TensorBoardOptions(LoggerOptions):
    flush_secs: int = Field(10, ge=1, description="Write pending events to disk at least this often (seconds), "
                                                  "so a running TensorBoard shows new steps soon.")


class TensorBoardLogger(Logger):
    """RUN/tensorboard/: every term raw and weighted, total, learning rate, steps/s, sample grids, the recipe."""

    name = "tensorboard"
    Options = TensorBoardOptions

    def __init__(self, options=None):
        super().__init__(options)
        if importlib.util.find_spec("tensorboard") is None:  # torch.utils.tensorboard imports it
            raise StylekitError(f"log.loggers lists tensorboard, but the tensorboard package is not installed: "
                                f"{INSTALL_HINT} (or remove tensorboard from the recipe's log.loggers)")
        self.writer = None

    def start(self, run, resumed_at):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops what was logged after its checkpoint: those steps are trained again.
        purge = resumed_at + 1 if resumed_at is not None else None
        self.writer = SummaryWriter(log_dir=str(run.logger_dir(self.name)), purge_step=purge,
                                    flush_secs=self.options.flush_secs)
        self._step0 = resumed_at or 0

    def log_recipe(self, recipe: dict[str, Any]) -> None:
        text = yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)
        # TensorBoard renders text as markdown: indented lines are a code block, so the YAML keeps its layout
        self.writer.add_text("recipe", "".join(f"    {line}\n" for line in text.splitlines()), self._step0)

    def log_metrics(self, metrics: StepMetrics) -> None:
        for tag, value in metrics.scalars().items():
            self.writer.add_scalar(tag, value, metrics.step)

    def log_image(self, tag, image, step):
        self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def finalize(self, status):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
