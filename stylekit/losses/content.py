"""Feature reconstruction (content) loss, Johnson et al. 2016 eq. 2 / Liu et al. 2017 eq. 4."""

from __future__ import annotations

import torch
from pydantic import Field

from .. import functional
from ..features import Tap
from .base import LossBatch, LossTerm, TermOptions

__all__ = ["ContentLoss", "ContentOptions"]


class ContentOptions(TermOptions):
    layer: str = Field("relu2_2", description="Backbone layer compared between ŷ and x.")


class ContentLoss(LossTerm):
    """Squared L2 distance of backbone features at one layer, divided by C·H·W."""

    name = "content"
    Options = ContentOptions

    def taps(self) -> list[Tap]:
        return [Tap(self.options.layer)]

    def forward(self, batch: LossBatch) -> torch.Tensor:
        layer = self.options.layer
        return functional.feature_reconstruction(batch.output_features[layer], batch.content_features[layer])
