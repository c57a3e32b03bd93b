"""Built-in loss terms, registered through the public ``stylekit_loss_terms`` hook."""

from __future__ import annotations

from ..deprecation import moved
from ..hookspecs import hookimpl
from .base import LossBatch, LossTerm, NetworkLayerLoss, TermContext, TermOptions
from .content import ContentLoss
from .depth import DepthLoss
from .edge import EdgeLoss
from .style import StyleLoss
from .tv import TotalVariation

__all__ = ["ContentLoss", "DepthLoss", "EdgeLoss", "LossBatch", "LossTerm", "NetworkLayerLoss", "StyleLoss",
           "TermContext", "TermOptions", "TotalVariation"]

# The perception types moved to stylekit.features and the maths to stylekit.functional.
__getattr__ = moved(__name__, {
    "Features": "stylekit.features:Features", "NetworkSpec": "stylekit.features:NetworkSpec",
    "Tap": "stylekit.features:Tap", "feature_reconstruction": "stylekit.functional:feature_reconstruction",
    "gram_matrix": "stylekit.functional:gram_matrix", "total_variation": "stylekit.functional:total_variation"})


@hookimpl
def stylekit_loss_terms():
    return [ContentLoss, DepthLoss, EdgeLoss, StyleLoss, TotalVariation]
