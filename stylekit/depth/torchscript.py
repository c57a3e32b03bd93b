"""Any TorchScript depth model: RGB in [0, 1] (N×3×H×W) → N×1×H×W."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field

from ..errors import ConfigError, WeightsMismatchError
from ..weights import resolve_choice
from .base import DepthNetwork, DepthOptions


class TorchScriptOptions(DepthOptions):
    weights: str = Field(..., description="Path to the TorchScript file (RGB [0, 1] in, N×1×H×W out).")
    output: Literal["inverse_depth", "depth"] = Field("inverse_depth",
                                                      description="What the model's output means.")
    input_size: int | None = Field(256, ge=16, description="Shorter side the model is run at (None: as given).")


class TorchScriptDepth(DepthNetwork):
    """A TorchScript file mapping RGB in [0, 1] to a 1-channel (inverse) depth map."""

    name = "torchscript"
    Options = TorchScriptOptions

    def __init__(self, options=None):
        super().__init__(options)
        choice = self.weights_choice()
        if choice.kind != "file":
            raise ConfigError("depth network 'torchscript' needs options.weights=/path/to/model.pt")
        path = resolve_choice(choice, None, component=self.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript deprecation notice
            try:
                self.net = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as exc:  # not a TorchScript archive (e.g. a state dict)
                raise WeightsMismatchError(f"{path} is not a TorchScript model ({str(exc).splitlines()[0]}); "
                                           "export one with torch.jit.script(model).save(path)") from exc
        self.output_kind = self.options.output  # type: ignore[misc]
        self.freeze()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images / 255.0)
