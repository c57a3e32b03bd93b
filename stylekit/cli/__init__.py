"""The ``stylekit`` command line: one module per command group, each a thin wrapper over the runtime (mostly
:mod:`stylekit.session`); :mod:`.app` holds what they share."""

# each module registers its commands on import, in the order `stylekit --help` lists them
from . import train, runs, images, models, evaluate, bench, plugins  # noqa: F401,I001
from .app import app, main

__all__ = ["app", "main"]
