"""The entry point stylekit loads (group ``stylekit``, see pyproject.toml)."""

import stylekit

from .terms import AlbedoStyleLoss, ShadingError, ShadingLoss


@stylekit.hookimpl
def stylekit_loss_terms():
    return [ShadingLoss, AlbedoStyleLoss]


@stylekit.hookimpl
def stylekit_metrics():
    return [ShadingError]
