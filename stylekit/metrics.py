"""Evaluation metrics as a plugin kind (hook ``stylekit_metrics``): one base class for the built-in metrics and
for plugins' alike.

A metric compares stylized images with the content images they came from and returns one value per image,
for each of its :attr:`Metric.columns`; ``stylekit evaluate`` computes every registered metric (or those
named with ``--metrics``), summarizes each column over images and compares models. A simple metric sets
``name`` and implements ``forward(content, stylized) -> (N,)``: it reports one column named after itself,
lower is better unless it sets ``better = "higher"``. A metric with several columns declares them and
implements :meth:`Metric.compute`. Metrics that look through pretrained networks get them from the
evaluation's shared cache in :meth:`Metric.prepare` (``self.networks``, see
:class:`~stylekit.evaluate.EvalNetworks`). Metrics are frozen and are called under ``torch.no_grad()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from .components import Component, ComponentOptions
from .errors import StylekitError

__all__ = ["Column", "Metric", "MetricContext", "MetricOptions", "MetricUnavailable"]


class MetricOptions(ComponentOptions):
    """Base of every metric's options (no common fields; unknown keys are errors)."""


class MetricUnavailable(StylekitError):
    """A metric that cannot run here (missing weights, no style image…); reported, never silently dropped."""


@dataclass(frozen=True)
class Column:
    """One reported number: what it is, how it is computed, and which way is better."""

    key: str
    label: str
    formula: str
    network: str
    range: str
    better: Literal["lower", "higher"]


@dataclass
class MetricContext:
    """What a metric may keep from the evaluation, handed to :meth:`Metric.prepare` once before the images."""

    #: the evaluation's frozen networks by role ('depth', 'hed', 'backbone'): a :class:`~stylekit.evaluate.EvalNetworks`
    networks: Any = None
    #: the style image (1×3×H×W, RGB in [0, 255]) when one is known
    style: torch.Tensor | None = None
    #: the same style image as stored (full size), for metrics that choose their own scale
    style_original: torch.Tensor | None = None
    device: torch.device = torch.device("cpu")


class Metric(Component, nn.Module):
    """Base class: set ``name`` (and ``Options``, a :class:`MetricOptions` subclass) and implement ``forward`` or,
    for several columns, declare ``columns`` and implement :meth:`compute`.

    ``metric(content, stylized)`` takes two N×3×H×W RGB batches in [0, 255] of the same size and returns a
    float tensor of shape (N,): its first column.
    """

    kind: ClassVar[str] = "metric"
    Options: ClassVar[type[ComponentOptions]] = MetricOptions
    #: what it reports (default: one column named after the metric, described by the docstring's first line)
    columns: ClassVar[tuple[Column, ...]] = ()
    #: the direction of the default column
    better: ClassVar[Literal["lower", "higher"]] = "lower"
    #: a heading for the report (default: the name)
    title: ClassVar[str] = ""
    #: the evaluation networks it looks through, by role ('depth', 'hed', 'backbone'; see :meth:`weights_used`)
    uses: ClassVar[tuple[str, ...]] = ()
    #: False for a metric that reports a quantity of training itself through training's network (the content
    #: and style losses): sharing weights with training is then its meaning, not a lack of independence
    judge: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and not cls.columns:
            cls.columns = (Column(cls.name, cls.name, cls.summary(), "", "", cls.better),)

    def __init__(self, options: ComponentOptions | dict | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)

    def prepare(self, context: MetricContext) -> None:
        """Called once before the images; the default keeps ``context``. Raise :class:`MetricUnavailable`
        (naming what is missing) when the metric cannot run here."""
        # kept outside nn.Module's attributes: the shared networks must not become submodules of the metric
        self.__dict__["_context"] = context

    @property
    def context(self) -> MetricContext:
        return self.__dict__.get("_context") or MetricContext()

    @property
    def networks(self):
        """The evaluation's networks (:class:`~stylekit.evaluate.EvalNetworks`); set by :meth:`prepare`."""
        if self.context.networks is None:
            raise MetricUnavailable(f"metric {self.name!r} looks through networks and was not prepared with them")
        return self.context.networks

    def weights_used(self) -> set[str]:
        """Identities of the pretrained weights behind its numbers (see :mod:`stylekit.weights.identity`): by
        default those of the networks of its :attr:`uses` roles. A metric with a network of its own overrides it."""
        if not self.uses:
            return set()
        return set().union(*(self.networks.identities(role) for role in self.uses))

    def forward(self, content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """The first column, one value per image: shape (N,)."""
        if type(self).compute is Metric.compute:
            raise NotImplementedError(f"{type(self).__name__} implements neither forward() nor compute()")
        return self.compute(content, stylized)[self.columns[0].key]

    def compute(self, content: torch.Tensor, stylized: torch.Tensor, **context: Any) -> dict[str, torch.Tensor]:
        """Every column, ``{key: (N,)}``; ``context`` holds extras such as BSDS ``boundaries`` (ignored by default)."""
        return {self.columns[0].key: self(content, stylized)}
