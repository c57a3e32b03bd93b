"""Built-in transformer networks, registered through the public ``stylekit_transformers`` hook; the shipped
models (:mod:`stylekit.models.zoo`)."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import TransformerNetwork
from .conditional import ConditionalLiteNet, ConditionalNet, StyledNetwork, style_weights
from .lite import LiteNet, LiteOptions
from .transformer import TransformerNet, TransformerOptions

__all__ = ["ConditionalLiteNet", "ConditionalNet", "LiteNet", "LiteOptions", "StyledNetwork", "TransformerNet",
           "TransformerNetwork", "TransformerOptions", "style_weights"]


@hookimpl
def stylekit_transformers():
    return [TransformerNet, LiteNet, ConditionalNet, ConditionalLiteNet]
