"""Edge (structure) loss of Cheng, Liu, …, Lai & Rosin, "Structure-Preserving Neural Style Transfer" (TIP 2020).

Squared error between HED responses of ŷ and x (by default HED's fused edge probability),
divided by C·H·W — the same form as the content and depth terms.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ..features import NetworkSpec
from .base import LossBatch, LossTerm, Tap, TermOptions
from .content import feature_reconstruction


class EdgeLossOptions(TermOptions):
    layer: str = Field("edges", description="HED layer compared: 'edges' (fused probability), 'fused' (logits), "
                                            "'side1'…'side5', or a VGG layer such as 'relu3_3'.")
    network_options: dict[str, Any] = Field(default_factory=dict,
                                            description="Options of the hed_vgg16 network (e.g. weights).")


class EdgeLoss(LossTerm):
    """Squared error of HED edge maps of ŷ and x, divided by C·H·W (Cheng et al. 2020)."""

    name = "edge"
    Options = EdgeLossOptions

    @property
    def spec(self) -> NetworkSpec:
        return NetworkSpec.of("backbone", "hed_vgg16", {"weights": "default", **self.options.network_options})

    def networks(self) -> list[NetworkSpec]:
        return [self.spec]

    def taps(self) -> list[Tap]:
        return [Tap(self.options.layer, self.spec.key)]

    def forward(self, batch: LossBatch) -> torch.Tensor:
        tap = self.taps()[0]
        return feature_reconstruction(batch.output_features[tap], batch.content_features[tap])
