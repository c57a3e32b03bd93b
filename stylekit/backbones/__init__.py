"""Built-in perception backbones, registered through the public ``stylekit_backbones`` hook."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .base import Backbone, BackboneOptions
from .timm_backbone import TimmBackbone
from .vgg import HEDVGG16, VGG16, VGG19

__all__ = ["Backbone", "BackboneOptions", "HEDVGG16", "TimmBackbone", "VGG16", "VGG19"]


@hookimpl
def stylekit_backbones():
    return [VGG16, VGG19, HEDVGG16, TimmBackbone]
