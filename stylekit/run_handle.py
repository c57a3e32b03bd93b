"""A run as Python code holds it: its folder, how its last training session ended, its metrics and its network
(:class:`Run`, what ``stylekit.train`` and :meth:`~stylekit.trainer.Trainer.fit` return), and the interrupt that
says how to continue it (:class:`RunInterrupted`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import find_model_file
from .stylizer import Stylizer
from .runs.folder import RunDir
from .runs.records import read_run


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM in a sweep) stopped a run; the message says where, and how to continue it."""

    def __init__(self, run_dir: Path, step: int, checkpoint: Path | None):
        self.run_dir, self.step, self.checkpoint = run_dir, step, checkpoint
        if checkpoint is None:
            message = (f"interrupted at step {step}, before the first checkpoint; nothing to resume in {run_dir} "
                       "(start the run again)")
        else:
            message = (f"interrupted at step {step}, checkpointed; resume with `stylekit train --resume {run_dir}` "
                       f"(Python: stylekit.train(resume={str(run_dir)!r}))")
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Run:
    """A training run: its folder and how the last session on it ended (what :func:`stylekit.train` returns)."""

    path: Path
    #: the step training reached
    steps: int = 0
    #: each loss term at the last logged step: ``{"content": {"raw": …, "weighted": …}, …}``
    final: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    #: training or style images that could not be read (one line each)
    skipped_images: list[str] = field(default_factory=list)

    @property
    def folder(self) -> RunDir:
        return RunDir(self.path)

    @property
    def state(self) -> str:
        """finished, interrupted, failed or running (as ``stylekit runs`` shows it)."""
        return read_run(self.path).state

    def metrics(self) -> list[dict[str, Any]]:
        """Every logged step of ``metrics.jsonl``, oldest first: ``{"step", "loss", "terms": {…}, "lr", …}``."""
        return self.folder.metric_rows()

    def load(self, device: str | torch.device = "cpu") -> Stylizer:
        """The network of the run's latest checkpoint, ready to stylize (as :func:`stylekit.load`)."""
        return Stylizer.from_file(find_model_file(self.path), device=device)
