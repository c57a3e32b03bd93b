"""The deferred NaN/inf check: remember the first bad step on the device, look at it rarely.

Checking ``torch.isfinite`` on the host every step costs a device sync per step, which on CUDA
is a large share of a fast step. :class:`FiniteCheck` instead records, on the device and without a
sync, the first step whose loss was non-finite and its term values; the host reads that flag every
``every`` steps and always before anything is written from the weights (metrics, samples,
checkpoints), so a bad step can never reach a checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from . import distributed
from .errors import NonFiniteLossError


class FiniteCheck:
    """Tracks non-finite losses per step and raises :class:`NonFiniteLossError` when asked to check."""

    def __init__(self, keys: Sequence[str], every: int, dist: distributed.DistContext | None = None):
        self.keys = list(keys)
        self.every = every
        self.dist = dist or distributed.DistContext()
        self._step: torch.Tensor | None = None  # the step being tracked, on the device
        self._bad_step: torch.Tensor | None = None  # first non-finite step, -1 if none
        self._bad_values: torch.Tensor | None = None  # its term values, then the total

    def start(self, step: int, device: torch.device) -> None:
        """Count steps from ``step`` (a resumed run's position) on ``device``."""
        self._step = torch.full((), step, dtype=torch.long, device=device)

    def track(self, total: torch.Tensor, raw: dict[str, torch.Tensor]) -> None:
        """Remember, on the device and without a sync, the first step whose loss was NaN/inf and its term values."""
        values = torch.stack([v.detach().float() for v in raw.values()] + [total.detach().float()])
        if self._bad_step is None or self._bad_step.device != values.device:
            self._bad_step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._bad_values = torch.zeros_like(values)
            if self._step is None or self._step.device != values.device:
                self._step = torch.zeros((), dtype=torch.long, device=values.device)
        self._step += 1
        newly = (~torch.isfinite(values)).any() & (self._bad_step < 0)
        self._bad_step = torch.where(newly, self._step, self._bad_step)
        self._bad_values = torch.where(newly, values, self._bad_values)

    def due(self, step: int, final: bool, cadences: Sequence[int]) -> bool:
        """A deferred check is due: every ``every`` steps, at the end, and before each write (``cadences``)."""
        return self.every > 1 and (final or step % self.every == 0 or any(step % c == 0 for c in cadences))

    def first_bad_step(self, collective: bool = True, device: torch.device | None = None) -> int:
        """The first non-finite step on any rank (one host sync), or -1."""
        if self._bad_step is None:
            flag = torch.full((), -1, dtype=torch.long, device=device)
        else:
            flag = self._bad_step.clone()
        if collective:
            distributed.all_reduce_(self.dist, flag, "max")
        return int(flag)

    def check(self, step: int, last_good: Path | None, device: torch.device | None = None) -> None:
        """Raise, naming the step and the term(s), if any step so far was non-finite on any rank."""
        bad_step = self.first_bad_step(device=device)
        if bad_step < 0:
            return
        here = self._bad_step is not None and int(self._bad_step) >= 0
        bad = []
        if here:
            values = self._bad_values.tolist()
            bad = [f"{k} (= {v})" for k, v in zip(self.keys, values) if not math.isfinite(v)]
        kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint had been written yet"
        where = ", ".join(bad) or ("total" if here else "another process")
        if bad_step > step:  # checked before the update
            done = "the run stopped without updating the weights"
        else:
            done = (f"the run stopped at step {step} (checked every {self.every} steps) and nothing "
                    f"was written from the weights after step {bad_step - 1}")
        raise NonFiniteLossError(
            f"loss became non-finite at step {bad_step} in term(s) {where}; {done} and {kept}. "
            "Try a lower optim.lr or term weight, or precision=fp32.")
