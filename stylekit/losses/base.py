"""Loss terms: what a term receives, what it returns, and how it asks for features.

A term never runs a network itself. It declares the feature taps it needs
(:meth:`LossTerm.taps`, :meth:`LossTerm.style_taps`); the trainer's
:class:`~stylekit.features.Perception` runs each network once per batch for all
terms together, and content-side features without gradient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from pydantic import BaseModel, Field
from torch import nn

from ..components import Component, ComponentOptions


class Tap(NamedTuple):
    """One feature map a term needs: ``layer`` of the network registered as ``network``."""

    layer: str
    network: str = "backbone"


@dataclass(frozen=True)
class NetworkSpec:
    """Which registered network, with which options; ``key`` is its name in :class:`Tap`."""

    kind: str
    name: str
    options_json: str = "{}"

    @classmethod
    def of(cls, kind: str, name: str, options: BaseModel | dict[str, Any] | None = None) -> "NetworkSpec":
        if isinstance(options, BaseModel):
            options = options.model_dump(mode="json")
        return cls(kind, name, json.dumps(options or {}, sort_keys=True))

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}" + ("" if self.options_json == "{}" else f":{self.options_json}")

    def build(self, registry) -> nn.Module:
        return registry.get(self.kind, self.name)(self.options)


class Features(dict):
    """Feature maps keyed by :class:`Tap`; a plain string means a layer of the perception backbone."""

    def __getitem__(self, key):
        if isinstance(key, str):
            key = Tap(key)
        return super().__getitem__(key)


@dataclass
class LossBatch:
    """Everything a term may look at for one training batch (images are RGB in [0, 255])."""

    output: torch.Tensor  # ŷ = transformer(x), requires grad
    content: torch.Tensor  # x
    output_features: Features
    content_features: Features  # computed under no_grad


class TermOptions(ComponentOptions):
    weight: float = Field(1.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")


class LossTerm(Component, nn.Module):
    """Base class for loss terms. Subclasses set ``name``, ``Options`` and implement ``forward``."""

    kind: ClassVar[str] = "loss"
    Options: ClassVar[type[ComponentOptions]] = TermOptions

    def __init__(self, options: ComponentOptions | dict | None = None, *, key: str | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)
        #: the name this instance has in the recipe (defaults to the term's registry name)
        self.key = key or self.name

    @property
    def weight(self) -> float:
        return float(self.options.weight)

    def taps(self) -> list[Tap]:
        """Features needed on both ŷ and x."""
        return []

    def style_taps(self) -> list[Tap]:
        """Features needed on the style image(s); passed to :meth:`set_style` once before training."""
        return []

    def networks(self) -> list:
        """Extra networks this term taps (:class:`~stylekit.features.NetworkSpec`, beside the recipe's backbone).

        Use ``spec.key`` as the ``network`` of this term's :class:`Tap` objects.
        """
        return []

    def set_style(self, style_features: list[Features]) -> None:
        """Precompute style targets, one :class:`Features` per style image."""

    def forward(self, batch: LossBatch) -> torch.Tensor:
        """Return the unweighted loss of each image in the batch, shape (N,)."""
        raise NotImplementedError


def feature_reconstruction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a − b||² / (C·H·W)`` for each item: shape (N,). Computed in float32."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


class NetworkLayerLoss(LossTerm):
    """A term comparing one layer of another network (a depth network, HED…) between ŷ and x.

    Subclasses say which network (:meth:`network_spec`) and have a ``layer`` option; the
    comparison defaults to the content loss's ``||a − b||² / (C·H·W)``.
    """

    def network_spec(self) -> NetworkSpec:
        raise NotImplementedError

    def networks(self) -> list[NetworkSpec]:
        return [self.network_spec()]

    def taps(self) -> list[Tap]:
        return [Tap(self.options.layer, self.network_spec().key)]

    def compare(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return feature_reconstruction(output, content)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        tap = self.taps()[0]
        return self.compare(batch.output_features[tap].float(), batch.content_features[tap].float())
