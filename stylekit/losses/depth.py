"""Depth-reconstruction loss of Liu, Lai & Rosin 2017 (eq. 2): ||φ1(ŷ) − φ1(x)||² / (C·H·W).

φ1 is a single-image depth network (a ``depth`` plugin). The content image's depth is
computed once per batch without gradient (it is a content-side feature); gradients flow
through φ1 into ŷ but never into φ1's weights.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator

from .. import functional
from ..depth.base import OUTPUT_LAYER
from ..features import NetworkSpec
from .base import NetworkLayerLoss, TermOptions


class DepthLossOptions(TermOptions):
    weight: float = Field(5.0, ge=0.0, description="Multiplier of this term in the total loss (paper: 5).")
    network: str = Field("effnet_depth_lite", description="Registered depth network φ1 (see `stylekit plugins`).")
    network_options: dict[str, Any] = Field(default_factory=dict, description="Options of that depth network.")
    layer: str = Field(OUTPUT_LAYER, description="'output' (the depth map, as in the paper) or one of the "
                                                 "network's intermediate layers.")
    scale_invariant: bool = Field(False, description="Align φ1(ŷ) to φ1(x) per image by least-squares scale and "
                                                     "shift before the squared error (these networks predict "
                                                     "relative depth). Only for layer 'output'.")

    @model_validator(mode="after")
    def _output_only(self):
        if self.scale_invariant and self.layer != OUTPUT_LAYER:
            raise ValueError("scale_invariant compares depth maps: it needs layer 'output'")
        return self


class DepthLoss(NetworkLayerLoss):
    """Squared error of depth-network outputs of ŷ and x, divided by C·H·W (Liu et al. 2017)."""

    name = "depth"
    Options = DepthLossOptions

    def network_spec(self) -> NetworkSpec:
        return NetworkSpec.of("depth", self.options.network, self.options.network_options)

    def compare(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        if self.options.scale_invariant:
            output = functional.align_scale_shift(output, content)
        return functional.feature_reconstruction(output, content)
