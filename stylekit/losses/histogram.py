"""Histogram loss (Risser, Wilmot & Barnes 2017, "Stable and Controllable Neural Texture Synthesis and Style
Transfer Using Histogram Losses", arXiv:1701.08893, §4.1): Gram matrices fix each layer's second moments but not
its distribution, so an output can match them with the wrong contrast — a washed-out palette, or a few extreme
activations where the painting has many moderate ones. This term pulls each channel's whole histogram to the
painting's: ‖O − R(O)‖² / (C·H·W) per layer, R(O) the histogram remapping of the output's features O
(:func:`stylekit.functional.histogram_remap`). Layer ``pixels`` is the RGB image itself: the painting's palette
and its spread.
"""

from __future__ import annotations

import torch
from pydantic import Field

from .. import functional
from ..features import Features, Tap
from .base import LossBatch, TermOptions
from .style import PaintingStatisticTerm, StyleNetwork

PIXELS = "pixels"


class HistogramOptions(TermOptions):
    weight: float = Field(1.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")
    layers: list[str] = Field(default_factory=lambda: [PIXELS], min_length=1,
                              description="Layers whose per-channel histograms are matched to the painting's; "
                                          "'pixels' is the RGB image (the palette and its contrast).")
    network: StyleNetwork | None = Field(
        None, description="The backbone whose layers are meant; null: the recipe's `backbone`.")
    quantiles: int = Field(1024, ge=16, description="The painting's histogram is kept as this many quantiles "
                                                   "per channel.")


class HistogramLoss(PaintingStatisticTerm):
    """Σ_layers ‖O − R(O)‖² / (C·H·W), each divided by the painting's mean channel variance there."""

    name = "histogram"
    Options = HistogramOptions

    def network_layers(self) -> list[str]:
        return [layer for layer in self.options.layers if layer != PIXELS]

    def set_style(self, style_features: list[Features]) -> None:
        images = self.context.style_images
        for layer in self.options.layers:
            per_image = [functional.quantiles(image if layer == PIXELS else f[Tap(layer, self._network_key())],
                                              self.options.quantiles)
                         for image, f in zip(images, style_features)]
            self.targets[layer] = self.style_targets(per_image)  # S×C×Q (one per style) or 1×C×Q
            # unitless: divided by the painting's mean per-channel variance at this layer
            self.scales[layer] = max(float(self.targets[layer].var(-1).mean()), 1e-12)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError(f"histogram term {self.key!r} has no style targets; call set_style() first")
        total = 0.0
        for layer in self.options.layers:
            features = batch.output if layer == PIXELS else batch.output_features[Tap(layer, self._network_key())]
            remapped = functional.histogram_remap(features, self.target_of(self.targets[layer], batch))
            total = total + functional.feature_reconstruction(features, remapped.to(features.dtype)) / self.scales[layer]
        return total
