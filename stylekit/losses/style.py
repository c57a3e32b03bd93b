"""Style reconstruction loss: Gram matrices (Johnson et al. 2016 eqs. 3–4; Liu et al. 2017 eqs. 5–7)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import functional
from ..features import BACKBONE, Features, NetworkSpec, Tap
from .base import LossBatch, LossTerm, TermOptions


class StyleNetwork(BaseModel):
    """A backbone the style term looks through instead of the recipe's (e.g. an ImageNet network beside HED)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., description="Registered backbone (see `stylekit plugins`).")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of that backbone.")


class StyleOptions(TermOptions):
    weight: float = Field(5.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")
    layers: list[str] = Field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"],
                              description="Backbone layers whose Gram matrices are matched.", min_length=1)
    layer_weights: list[float] | None = Field(
        None, description="Optional per-layer multipliers, one per entry of `layers` (default: all 1).")
    normalize_layers: bool = Field(
        False, description="Divide each layer's Gram distance by the mean square of the style's Gram matrix "
                           "there, so every layer counts alike whatever the backbone's activation scale (HED's "
                           "Caffe VGG-16: relu1_2 Grams are ~10^7× relu4_3's); then a weight of 50–500 is typical.")
    network: StyleNetwork | None = Field(
        None, description="The backbone whose Gram matrices are matched; null: the recipe's `backbone`. Two style "
                          "terms (`term: style`) can look through two networks.")
    reduction: Literal["sum", "mean"] = Field(
        "sum", description="'sum': squared Frobenius norm of the Gram difference (the papers' eq.); "
                           "'mean': mean over the C×C entries, as Johnson's Lua code (nn.MSECriterion) does.")

    @model_validator(mode="after")
    def _same_length(self):
        if self.layer_weights is not None and len(self.layer_weights) != len(self.layers):
            raise ValueError(f"layer_weights has {len(self.layer_weights)} entries but layers has {len(self.layers)}")
        return self


class PaintingStatisticTerm(LossTerm):
    """A term that matches a statistic of ŷ's features at ``options.layers`` to the painting's, through the
    recipe's backbone or ``options.network``: per layer a target (``targets``) and a divisor (``scales``)."""

    def __init__(self, options=None, *, key=None):
        super().__init__(options, key=key)
        self.targets: dict[str, torch.Tensor] = {}
        self.scales: dict[str, float] = {}  # per-layer divisors, from the painting's statistics

    def _network_key(self) -> str:
        net = self.options.network
        return BACKBONE if net is None else NetworkSpec.of("backbone", net.name, net.options).key

    def network_layers(self) -> list[str]:
        """The layers read from the network (all of ``options.layers`` unless a subclass has others)."""
        return list(self.options.layers)

    def networks(self) -> list[NetworkSpec]:
        net = self.options.network
        return [] if net is None or not self.network_layers() else [NetworkSpec.of("backbone", net.name, net.options)]

    def output_taps(self) -> list[Tap]:
        return [Tap(layer, self._network_key()) for layer in self.network_layers()]

    def style_taps(self) -> list[Tap]:
        return self.output_taps()


class StyleLoss(PaintingStatisticTerm):
    """Squared Frobenius distance of Gram matrices (normalized by C·H·W), summed over layers."""

    name = "style"
    Options = StyleOptions

    def set_style(self, style_features: list[Features]) -> None:
        # Several style images: the target is their mean Gram matrix (a multi-style network: one per style).
        for layer in self.options.layers:
            tap = Tap(layer, self._network_key())
            grams = [functional.gram_matrix(f[tap]).mean(0) for f in style_features]
            self.targets[layer] = self.style_targets(grams)
            target = self.targets[layer]
            # the divisor in the reduction's own units: mean (or sum) of the squared target entries
            norm = target.pow(2).mean() if self.options.reduction == "mean" else target.pow(2).sum((1, 2)).mean()
            self.scales[layer] = max(float(norm), 1e-30) if self.options.normalize_layers else 1.0

    def forward(self, batch: LossBatch) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError(f"style term {self.key!r} has no style targets; call set_style() first")
        weights = self.options.layer_weights or [1.0] * len(self.options.layers)
        total = 0.0
        for layer, w in zip(self.options.layers, weights):
            features = batch.output_features[Tap(layer, self._network_key())]
            diff = functional.gram_matrix(features) - self.target_of(self.targets[layer], batch).to(batch.output.device)
            squared = diff.pow(2)
            distance = squared.sum((1, 2)) if self.options.reduction == "sum" else squared.mean((1, 2))
            total = total + (w / self.scales[layer]) * distance
        return total
