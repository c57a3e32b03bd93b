"""Built-in depth networks, registered through the public ``stylekit_depth_networks`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import OUTPUT_LAYER, DepthNetwork, DepthOptions
from .depth_anything import DepthAnythingV2
from .effnet_depth_lite import EffnetDepthLite
from .hed_depth_lite import HedDepthLite
from .hourglass import HourglassDepth
from .midas import DPTHybrid, DPTLarge, MidasSmall
from .torchscript import TorchScriptDepth

__all__ = ["OUTPUT_LAYER", "DPTHybrid", "DPTLarge", "DepthAnythingV2", "DepthNetwork", "DepthOptions",
           "EffnetDepthLite", "HedDepthLite", "HourglassDepth", "MidasSmall", "TorchScriptDepth"]


@hookimpl
def stylekit_depth_networks():
    return [DPTHybrid, DPTLarge, DepthAnythingV2, EffnetDepthLite, HedDepthLite, HourglassDepth, MidasSmall, TorchScriptDepth]
