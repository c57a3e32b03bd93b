"""Loss terms: what a term receives, what it returns, and how it asks for features.

A term never runs a network itself. It declares the feature taps it needs
(:meth:`LossTerm.taps`, :meth:`LossTerm.style_taps`); the trainer's
:class:`~stylekit.features.Perception` runs each network once per batch for all
terms together, and content-side features without gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from pydantic import Field
from torch import nn

from ..components import Component, ComponentOptions


class Tap(NamedTuple):
    """One feature map a term needs: ``layer`` of the network registered as ``network``."""

    layer: str
    network: str = "backbone"


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
