"""Built-in depth networks, registered through the public ``stylekit_depth_networks`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import OUTPUT_LAYER, DepthNetwork, DepthOptions
from .depth_anything import DepthAnythingV2
from .hourglass import HourglassDepth
from .midas import DPTHybrid, DPTLarge, MidasSmall
from .torchscript import TorchScriptDepth

__all__ = ["OUTPUT_LAYER", "DepthNetwork", "DepthOptions", "TorchScriptDepth", "HourglassDepth", "MidasSmall",
           "DPTHybrid", "DPTLarge", "DepthAnythingV2"]


@hookimpl
def stylekit_depth_networks():
    return [TorchScriptDepth, HourglassDepth, MidasSmall, DPTHybrid, DPTLarge, DepthAnythingV2]
