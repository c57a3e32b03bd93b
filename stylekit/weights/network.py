"""The base of every pretrained network a loss looks through: backbones and depth networks."""

from __future__ import annotations

from typing import ClassVar, Iterable

from torch import nn

from ..components import Component, ComponentOptions
from .files import WeightsFile
from .state import WeightsChoice, parse_weights_option


class FrozenNetwork(Component, nn.Module):
    """A pretrained network used as a fixed function: frozen, and in eval mode for good.

    Subclasses build their modules, load weights with :func:`~stylekit.weights.load_pretrained`
    (their ``weights`` option parsed by :meth:`weights_choice`), then call :meth:`freeze`. Gradients
    still flow through them to their input (a loss on φ(ŷ) trains the transformer), never into them.
    """

    #: the published weights (None: supplied by the user, built in, or fetched by another library)
    weights_file: ClassVar[WeightsFile | None] = None

    def __init__(self, options: ComponentOptions | dict | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)

    def weights_choice(self, option: str = "weights", names: Iterable[str] = ()) -> WeightsChoice:
        """The parsed ``'default' | 'random' | name | path`` value of ``options.<option>``."""
        return parse_weights_option(getattr(self.options, option), option=option, names=names, component=self.name)

    def freeze(self) -> "FrozenNetwork":
        """No parameter takes gradients; eval mode, which ``train()`` cannot switch back."""
        for p in self.parameters():
            p.requires_grad_(False)
        return nn.Module.train(self, False)

    def train(self, mode: bool = True) -> "FrozenNetwork":  # noqa: ARG002 - always eval
        return nn.Module.train(self, False)
