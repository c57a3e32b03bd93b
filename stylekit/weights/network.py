"""The base of every pretrained network a loss looks through: backbones and depth networks."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from torch import nn

from ..components import Component, ComponentOptions
from .files import WeightsFile
from .identity import WeightsSource, identify
from .state import WeightsChoice, parse_weights_option


class FrozenNetwork(Component, nn.Module):
    """A pretrained network used as a fixed function: frozen, and in eval mode for good.

    Subclasses build their modules, load weights with :func:`~stylekit.weights.load_pretrained`
    (their ``weights`` option parsed by :meth:`weights_choice`), then call :meth:`freeze`. Gradients
    still flow through them to their input (a loss on φ(ŷ) trains the transformer), never into them.
    """

    #: the published weights (None: supplied by the user, built in, or fetched by another library)
    weights_file: ClassVar[WeightsFile | None] = None
    #: the name of the published weights in :meth:`weights_used` (default: "<name> published weights")
    weights_identity: ClassVar[str] = ""

    def __init__(self, options: ComponentOptions | dict | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)

    @classmethod
    def weights_used(cls, options: ComponentOptions | dict[str, Any] | None = None) -> dict[str, WeightsSource]:
        """The pretrained weights this network holds when built with ``options``: identity → where they are found.

        Read from the options alone (nothing is built or loaded), so ``stylekit evaluate`` can tell whether a judge
        shares weights with a model's training networks (see :mod:`stylekit.weights.identity`). The default reads
        the ``weights`` option against :attr:`weights_file`; a network holding several sets (an encoder and a
        decoder) overrides it and declares each.
        """
        opts = cls.parse_options(options)
        if not hasattr(opts, "weights"):
            return {}
        return identify(opts.weights, cls.weights_file, cls.weights_identity or f"{cls.name} published weights",
                        component=cls.name)

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
