"""Built-in loss terms, registered through the public ``stylekit_loss_terms`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import LossBatch, LossTerm, NetworkLayerLoss, TermContext, TermOptions
from .content import ContentLoss
from .depth import DepthLoss
from .edge import EdgeLoss
from .histogram import HistogramLoss
from .style import StyleLoss
from .tv import TotalVariation

__all__ = ["ContentLoss", "DepthLoss", "EdgeLoss", "HistogramLoss", "LossBatch", "LossTerm", "NetworkLayerLoss", "StyleLoss",
           "TermContext", "TermOptions", "TotalVariation"]


@hookimpl
def stylekit_loss_terms():
    return [ContentLoss, DepthLoss, EdgeLoss, HistogramLoss, StyleLoss, TotalVariation]
