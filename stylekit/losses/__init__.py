"""Built-in loss terms, registered through the public ``stylekit_loss_terms`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import Features, LossBatch, LossTerm, NetworkLayerLoss, NetworkSpec, Tap, TermContext, TermOptions
from .content import ContentLoss, feature_reconstruction
from .depth import DepthLoss
from .edge import EdgeLoss
from .style import StyleLoss, gram_matrix
from .tv import TotalVariation, total_variation

__all__ = ["ContentLoss", "DepthLoss", "EdgeLoss", "Features", "LossBatch", "LossTerm", "NetworkLayerLoss", "NetworkSpec",
           "StyleLoss", "Tap", "TermContext", "TermOptions",
           "TotalVariation", "feature_reconstruction", "gram_matrix", "total_variation"]


@hookimpl
def stylekit_loss_terms():
    return [ContentLoss, DepthLoss, EdgeLoss, StyleLoss, TotalVariation]
