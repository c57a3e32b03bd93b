"""Edge (structure) loss of Cheng, Liu, …, Lai & Rosin, "Structure-Preserving Neural Style Transfer" (TIP 2020).

Squared error between HED responses of ŷ and x (by default HED's fused edge probability),
divided by C·H·W — the same form as the content and depth terms.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..features import NetworkSpec
from .base import NetworkLayerLoss, TermOptions


class EdgeLossOptions(TermOptions):
    layer: str = Field("edges", description="HED layer compared: 'edges' (fused probability), 'fused' (logits), "
                                            "'side1'…'side5', or a VGG layer such as 'relu3_3'.")
    network_options: dict[str, Any] = Field(default_factory=dict,
                                            description="Options of the hed_vgg16 network (e.g. weights).")


class EdgeLoss(NetworkLayerLoss):
    """Squared error of HED edge maps of ŷ and x, divided by C·H·W (Cheng et al. 2020)."""

    name = "edge"
    Options = EdgeLossOptions

    def network_spec(self) -> NetworkSpec:
        return NetworkSpec.of("backbone", "hed_vgg16", {"weights": "default", **self.options.network_options})
