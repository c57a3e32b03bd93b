"""Single-image depth networks (φ1 in Liu et al. 2017) as a plugin kind.

A depth network takes stylekit images (RGB, [0, 255], N×3×H×W, any H and W),
does its own preprocessing and resizing, and returns an N×1×H×W map at the input's
size. It is frozen, in eval mode, and differentiable with respect to its input, so
a loss on φ1(ŷ) trains the transformer. ``output_kind`` says what the map means;
all these networks are relative (unknown per-image scale and shift).
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..components import Component, ComponentOptions
from ..weights import WeightsFile

OUTPUT_LAYER = "output"


class DepthOptions(ComponentOptions):
    weights: str = Field("default", description="'default' (the network's published weights), 'random' "
                                                "(random init, for tests) or a local file.")
    input_size: int | None = Field(None, ge=16, description="Resize so the shorter side is this many pixels before "
                                                           "the network (default: the network's own choice); the "
                                                           "map is resized back to the input size.")


class DepthNetwork(Component, nn.Module):
    """Base class: implement :meth:`infer` on preprocessed, resized input; the base handles sizes."""

    kind: ClassVar[str] = "depth"
    Options: ClassVar[type[ComponentOptions]] = DepthOptions
    #: 'inverse_depth' (larger = nearer, like MiDaS) or 'depth' (larger = farther)
    output_kind: ClassVar[Literal["inverse_depth", "depth"]] = "inverse_depth"
    #: the published weights (None: supplied by the user or built in)
    weights_file: ClassVar[WeightsFile | None] = None
    license: ClassVar[str] = ""
    #: default shorter side the network is run at, and the multiple H and W are padded to
    default_input_size: ClassVar[int | None] = None
    size_multiple: ClassVar[int] = 1

    def __init__(self, options: ComponentOptions | dict | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)

    # -- subclass API ---------------------------------------------------------
    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Network on images already resized/padded (still RGB 0–255): N×1×h×w."""
        raise NotImplementedError

    def intermediate_layers(self) -> list[str]:
        """Names usable as ``layer`` besides 'output' (see :meth:`infer_layers`)."""
        return []

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Intermediate feature maps on resized/padded input; override together with ``intermediate_layers``."""
        raise ValueError(f"depth network {self.name!r} exposes no intermediate layers")

    # -- shared behaviour -----------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [OUTPUT_LAYER, *self.intermediate_layers()]

    def freeze(self) -> "DepthNetwork":
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "DepthNetwork":  # noqa: ARG002 - always eval
        return super().train(False)

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = images.shape[-2:]
        size = self.options.input_size or self.default_input_size
        x = images
        if size and min(h, w) != size:
            scale = size / min(h, w)
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                              align_corners=False, antialias=scale < 1)
        m = self.size_multiple
        ph, pw = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x, (x.shape[-2] - ph, x.shape[-1] - pw)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Depth/inverse-depth map at the input's size: N×1×H×W."""
        h, w = images.shape[-2:]
        x, (vh, vw) = self._prepare(images)
        out = self.infer(x)[..., :vh, :vw]
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    def forward(self, images: torch.Tensor, layers: Iterable[str] = (OUTPUT_LAYER,)) -> dict[str, torch.Tensor]:
        """The perception-network protocol: ``{layer: tensor}`` for 'output' and/or intermediate layers."""
        layers = list(layers)
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ValueError(f"depth network {self.name!r} has no layer(s) {unknown}; "
                             f"its layers are: {', '.join(self.layer_names)}")
        out: dict[str, torch.Tensor] = {}
        if OUTPUT_LAYER in layers:
            out[OUTPUT_LAYER] = self.predict(images)
        rest = [name for name in layers if name != OUTPUT_LAYER]
        if rest:
            x, _ = self._prepare(images)
            out.update(self.infer_layers(x, rest))
        return out
