"""The loss terms (``shading``, ``albedo_style``) and the metric (``shading_error``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

import stylekit
from stylekit.functional import gram_matrix

from .decompose import IntrinsicOptions, albedo, log_shading


class ShadingOptions(IntrinsicOptions, stylekit.TermOptions):
    weight: float = Field(1.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")
    space: Literal["log", "linear"] = Field(
        "log", description="'log': mean squared difference of log-shading (relative, scale-free); "
                           "'linear': mean squared difference of shading / 255.")


class ShadingLoss(stylekit.LossTerm):
    """Keeps the content image's shading layer: mean squared difference of shading(ŷ) and shading(x)."""

    name = "shading"
    Options = ShadingOptions

    def forward(self, batch: stylekit.LossBatch) -> torch.Tensor:
        a, b = log_shading(batch.output, self.options), log_shading(batch.content, self.options)
        if self.options.space == "linear":
            a, b = torch.exp(a) / 255.0, torch.exp(b) / 255.0
        return (a - b).pow(2).flatten(1).mean(1)


class AlbedoStyleOptions(IntrinsicOptions, stylekit.TermOptions):
    weight: float = Field(1.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")
    layers: list[str] = Field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"], min_length=1,
                              description="Backbone layers whose Gram matrices of the albedo layer are matched.")
    reduction: Literal["sum", "mean"] = Field(
        "mean", description="'sum': squared Frobenius norm of the Gram difference; 'mean': mean over its C×C "
                            "entries (as the built-in `style` term's 'mean').")
    backbone: str | None = Field(None, description="Backbone for the albedo features; None: the recipe's backbone.")
    backbone_options: dict[str, Any] = Field(default_factory=dict,
                                             description="Options of `backbone` (ignored when it is None).")


class AlbedoStyleLoss(stylekit.LossTerm):
    """Gram style loss between the albedo layers of ŷ and of the style image(s)."""

    name = "albedo_style"
    Options = AlbedoStyleOptions

    def __init__(self, options=None, *, key=None):
        super().__init__(options, key=key)
        self.targets: dict[str, torch.Tensor] = {}

    def _spec(self) -> stylekit.NetworkSpec | None:
        if self.options.backbone is None:
            return None
        return stylekit.NetworkSpec.of("backbone", self.options.backbone, self.options.backbone_options)

    def networks(self) -> list[stylekit.NetworkSpec]:
        spec = self._spec()
        return [spec] if spec else []

    def _taps(self) -> list[stylekit.Tap]:
        spec = self._spec()
        network = spec.key if spec else "backbone"
        return [stylekit.Tap(layer, network) for layer in self.options.layers]

    # The albedo is derived from ŷ, so the shared taps (features of ŷ itself) are no use: this
    # term declares none and runs the network on the albedo through the run's Perception.
    def prepare(self, context: stylekit.TermContext) -> None:
        super().prepare(context)
        taps, grams = self._taps(), {layer: [] for layer in self.options.layers}
        with torch.no_grad():
            for image in context.style_images:
                features = self.perception.extract(albedo(image, self.options), taps)
                for tap in taps:
                    grams[tap.layer].append(gram_matrix(features[tap]).mean(0))
        self.targets = {layer: torch.stack(g).mean(0, keepdim=True) for layer, g in grams.items()}

    def forward(self, batch: stylekit.LossBatch) -> torch.Tensor:
        if not self.targets:
            raise RuntimeError(f"albedo_style term {self.key!r} has no style targets; prepare() was not called")
        features = self.perception.extract(albedo(batch.output, self.options), self._taps())
        total = 0.0
        for tap in self._taps():
            squared = (gram_matrix(features[tap]) - self.targets[tap.layer].to(batch.output.device)).pow(2)
            total = total + (squared.sum((1, 2)) if self.options.reduction == "sum" else squared.mean((1, 2)))
        return total


class ShadingErrorOptions(IntrinsicOptions, stylekit.MetricOptions):
    pass


class ShadingError(stylekit.Metric):
    """RMS difference of log-shading between content and stylized image (0: shading kept)."""

    name = "shading_error"
    Options = ShadingErrorOptions

    def forward(self, content: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        diff = log_shading(stylized, self.options) - log_shading(content, self.options)
        return diff.pow(2).flatten(1).mean(1).sqrt()
