"""Evaluation metrics as a plugin kind (hook ``stylekit_metrics``).

A metric compares stylised images with the content images they came from and
returns one number per image, so ``stylekit evaluate`` can average, aggregate
or tabulate them however it likes. Metrics are frozen (no trainable state) and
are called under ``torch.no_grad()``. A loss plugin that wants its quantity
reported during evaluation registers a metric next to its term.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .components import Component, ComponentOptions


class MetricOptions(ComponentOptions):
    """Base of every metric's options (no common fields; unknown keys are errors)."""


class Metric(Component, nn.Module):
    """Base class: set ``name``, ``Options`` (a :class:`MetricOptions` subclass) and implement ``forward``.

    ``metric(content, stylised)`` takes two N×3×H×W RGB batches in [0, 255] of the same
    size and returns a float tensor of shape (N,).
    """

    kind: ClassVar[str] = "metric"
    Options: ClassVar[type[ComponentOptions]] = MetricOptions

    def __init__(self, options: ComponentOptions | dict | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)

    def forward(self, content: torch.Tensor, stylised: torch.Tensor) -> torch.Tensor:
        """One value per image, shape (N,)."""
        raise NotImplementedError
