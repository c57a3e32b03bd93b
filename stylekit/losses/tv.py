"""Total-variation regularizer (Johnson et al. 2016 §3; Mahendran & Vedaldi 2015)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from .. import functional
from .base import LossBatch, LossTerm, TermOptions


class TVOptions(TermOptions):
    weight: float = Field(1e-5, ge=0.0, description="Multiplier; the papers use 1e-6..1e-4 on 0–255 images.")
    power: Literal[1, 2] = Field(2, description="2: squared differences (Johnson's code); 1: anisotropic L1 TV.")


class TotalVariation(LossTerm):
    """Total variation of ŷ (sum of squared neighbor differences, 0–255 scale) for smoothness."""

    name = "tv"
    Options = TVOptions

    def forward(self, batch: LossBatch) -> torch.Tensor:
        return functional.total_variation(batch.output, self.options.power)
