"""stylekit: feed-forward neural style transfer whose loss is composed from plugins."""

from __future__ import annotations

from .version import __version__

from .api import Run, RunInterrupted, Stylizer, list_components, list_models, load, train  # noqa: E402
from .backbones.base import Backbone, BackboneOptions  # noqa: E402
from .components import Component, ComponentOptions  # noqa: E402
from .depth.base import DepthNetwork, DepthOptions  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .loggers import Logger, LoggerOptions, StepMetrics  # noqa: E402
from .features import Features, NetworkSpec, Perception, Tap  # noqa: E402
from .losses.base import LossBatch, LossTerm, TermContext, TermOptions  # noqa: E402
from .metrics import Metric, MetricOptions  # noqa: E402
from .models.base import TransformerNetwork  # noqa: E402
from .models.transformer import TransformerNet, TransformerOptions  # noqa: E402
from .plugins import get_plugin_manager, get_registry  # noqa: E402
from .session import build_component  # noqa: E402
from .weights import WeightsFile, resolve_weights  # noqa: E402


def create_backbone(name: str, plugins=(), **options) -> Backbone:
    """Build a registered perception backbone by name (like ``timm.create_model``)."""
    return build_component("backbone", name, options, plugins=plugins)


def create_depth_network(name: str, plugins=(), **options) -> DepthNetwork:
    """Build a registered depth network by name."""
    return build_component("depth", name, options, plugins=plugins)


def create_metric(name: str, plugins=(), **options) -> Metric:
    """Build a registered evaluation metric by name with its options."""
    return build_component("metric", name, options, plugins=plugins)


def create_model(name: str = "johnson", plugins=(), **options) -> TransformerNetwork:
    """Build a registered transformer network by name with its options (untrained), e.g.
    ``create_model("cin", styles=["wave", "udnie"])``."""
    return build_component("model", name, options, plugins=plugins)


def create_loss(name: str, plugins=(), **options) -> LossTerm:
    """Build a registered loss term by name with its options (``weight`` and the term's own)."""
    return build_component("loss", name, options, plugins=plugins)


__all__ = ["Backbone", "BackboneOptions", "Component", "ComponentOptions", "DepthNetwork", "DepthOptions", "Features",
           "Logger", "LoggerOptions", "LossBatch", "LossTerm", "Metric", "MetricOptions", "NetworkSpec", "Perception",
           "Run", "RunInterrupted", "StepMetrics", "Stylizer", "Tap",
           "TermContext", "TermOptions", "TransformerNet", "TransformerNetwork", "TransformerOptions", "WeightsFile",
           "__version__", "build_component", "create_backbone", "create_depth_network", "create_loss", "create_metric",
           "create_model",
           "get_plugin_manager", "get_registry", "hookimpl", "list_components", "list_models", "load",
           "resolve_weights", "train"]
