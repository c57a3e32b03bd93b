"""Built-in depth networks, registered through the public ``stylekit_depth_networks`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import OUTPUT_LAYER, DepthNetwork, DepthOptions
from .hed_depth_lite import HedDepthLite
from .torchscript import TorchScriptDepth

__all__ = ["OUTPUT_LAYER", "DepthNetwork", "DepthOptions", "HedDepthLite", "TorchScriptDepth"]


@hookimpl
def stylekit_depth_networks():
    return [HedDepthLite, TorchScriptDepth]
