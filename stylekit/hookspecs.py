"""The hooks through which every stylekit component is registered.

Built-in components use exactly these hooks (see ``stylekit/losses`` and
``stylekit/backbones``), as do third-party packages (entry-point group
``stylekit``) and a user's own ``my_loss.py`` (``--plugin my_loss.py``).
Each hook returns a list of component classes; the plugin manager records
which plugin supplied each one so that ``stylekit plugins`` can say where it came from.
"""

from __future__ import annotations

import pluggy

PROJECT = "stylekit"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate your hook implementations with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def stylekit_loss_terms() -> list[type]:
    """Return loss-term classes (subclasses of :class:`stylekit.LossTerm`)."""


@hookspec
def stylekit_backbones() -> list[type]:
    """Return perception-backbone classes (subclasses of :class:`stylekit.Backbone`)."""


@hookspec
def stylekit_depth_networks() -> list[type]:
    """Return single-image depth-network classes (subclasses of :class:`stylekit.DepthNetwork`)."""


@hookspec
def stylekit_metrics() -> list[type]:
    """Return evaluation-metric classes (subclasses of :class:`stylekit.Metric`).

    A metric scores stylized images against their content images, one value per image;
    ``stylekit evaluate`` reports every registered metric.
    """


@hookspec
def stylekit_loggers() -> list[type]:
    """Return training-logger classes (subclasses of :class:`stylekit.Logger`).

    A recipe chooses loggers by name (``log.loggers: [jsonl, tensorboard]``); during training each
    receives the logged metrics, the sample grids and the resolved recipe (rank 0 only).
    """


@hookspec
def stylekit_transformers() -> list[type]:
    """Return transformer-network classes (subclasses of :class:`stylekit.TransformerNetwork`).

    A recipe picks one by name (``model.name``, default ``johnson``); its other ``model`` keys are the
    network's options. Checkpoints record the name, so loading a model finds the same class.
    """
