"""Perception backbones: frozen feature extractors tapped by layer name.

Every image tensor in stylekit is RGB, float, in [0, 255], shaped N×3×H×W.
A backbone does its own input normalization, so callers never need to know
which convention the pretrained weights expect.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

import torch
from pydantic import Field

from ..components import ComponentOptions
from ..weights import FrozenNetwork


class BackboneOptions(ComponentOptions):
    weights: str = Field("default", description="'default' (the component's pretrained weights), "
                         "'random' (random init, for tests) or a file path.")


class Backbone(FrozenNetwork):
    """Base class: a frozen network whose ``forward`` returns the requested layers."""

    kind: ClassVar[str] = "backbone"
    Options: ClassVar[type[ComponentOptions]] = BackboneOptions

    @property
    def layer_names(self) -> list[str]:
        """Tappable layers, shallow to deep."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        known = self.layer_names
        layers = list(layers)
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ValueError(f"backbone {self.name!r} has no layer(s) {unknown}; its layers are: {', '.join(known)}")
        return layers
