"""Loss terms: what a term receives, what it returns, and how it asks for features.

A term normally never runs a network itself. It declares the feature taps it needs
(:meth:`LossTerm.taps`, :meth:`LossTerm.output_taps`, :meth:`LossTerm.style_taps`); the trainer's
:class:`~stylekit.features.Perception` runs each network once per batch for all
terms together, and content-side features without gradient.

A term that needs features of an image it derives itself (e.g. the albedo layer of ŷ)
cannot use the shared taps; :meth:`LossTerm.prepare` hands it the run's
:class:`TermContext` (the Perception and the style images) once before training,
and it calls ``self.perception.extract(image, taps)`` in ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from .. import features, functional
from ..components import Component, ComponentOptions


@dataclass
class LossBatch:
    """Everything a term may look at for one training batch (images are RGB in [0, 255])."""

    output: torch.Tensor  # ŷ = transformer(x), requires grad
    content: torch.Tensor  # x
    output_features: features.Features
    content_features: features.Features  # computed under no_grad
    style: torch.Tensor | None = None  # a multi-style network: each image's style (index into the style images)


@dataclass
class TermContext:
    """What a term may keep from the run, handed to :meth:`LossTerm.prepare` once before training."""

    perception: features.Perception  # the run's frozen networks; the recipe's backbone is network "backbone"
    style_images: list[torch.Tensor]  # each 1×3×H×W, RGB in [0, 255], on the training device
    device: torch.device
    #: a multi-style network learns one style per style image (``batch.style`` says which); else the images
    #: together are one style
    per_style: bool = False


class TermOptions(ComponentOptions):
    weight: float = Field(1.0, ge=0.0, description="Multiplier of this term in the total loss; 0 disables it.")


class LossTerm(Component, nn.Module):
    """Base class for loss terms. Subclasses set ``name``, ``Options`` and implement ``forward``."""

    kind: ClassVar[str] = "loss"
    Options: ClassVar[type[ComponentOptions]] = TermOptions

    def __init__(self, options: ComponentOptions | dict | None = None, *, key: str | None = None):
        nn.Module.__init__(self)
        self.options = self.parse_options(options)
        #: the name this instance has in the recipe (defaults to the term's registry name)
        self.key = key or self.name

    @property
    def weight(self) -> float:
        return float(self.options.weight)

    def taps(self) -> list[features.Tap]:
        """Features needed on both ŷ and x (in ``batch.output_features`` and ``batch.content_features``)."""
        return []

    def output_taps(self) -> list[features.Tap]:
        """Features needed on ŷ only (``batch.output_features``), e.g. to compare with style targets.

        Declaring them here instead of in :meth:`taps` spares the no-grad pass on x those layers:
        with Johnson's recipe, VGG-16 on x then stops at relu2_2 instead of relu4_3.
        """
        return []

    def style_taps(self) -> list[features.Tap]:
        """Features needed on the style image(s); passed to :meth:`set_style` once before training."""
        return []

    def networks(self) -> list:
        """Extra networks this term taps (:class:`~stylekit.features.NetworkSpec`, beside the recipe's backbone).

        Use ``spec.key`` as the ``network`` of this term's :class:`~stylekit.features.Tap` objects.
        """
        return []

    def prepare(self, context: TermContext) -> None:
        """Called once before :meth:`set_style`; the default keeps ``context`` (see :attr:`perception`).

        Override to precompute targets from the raw style images (call ``super().prepare(context)``
        first); run networks under ``torch.no_grad()`` here.
        """
        # Kept outside nn.Module's attribute machinery: the frozen networks must not become
        # submodules (and parameters or state-dict entries) of the term.
        self.__dict__["_context"] = context

    @property
    def context(self) -> TermContext:
        context = self.__dict__.get("_context")
        if context is None:
            raise RuntimeError(f"loss term {self.key!r} was not prepared: the trainer (or stylekit.testing.check_term) "
                               "calls term.prepare(TermContext(...)) before training")
        return context

    @property
    def perception(self) -> features.Perception:
        """The run's :class:`~stylekit.features.Perception`, for features of images the term derives itself."""
        return self.context.perception

    def set_style(self, style_features: list[features.Features]) -> None:
        """Precompute style targets, one :class:`~stylekit.features.Features` per style image (its ``style_taps``)."""

    def style_targets(self, per_image: list[torch.Tensor]) -> torch.Tensor:
        """Targets computed per style image → the term's targets, S×…: one per style for a multi-style network
        (``context.per_style``), else their mean (1×…: the images together are one style)."""
        stacked = torch.stack(per_image).detach()
        context = self.__dict__.get("_context")
        return stacked if context is not None and context.per_style else stacked.mean(0, keepdim=True)

    @staticmethod
    def target_of(targets: torch.Tensor, batch: LossBatch) -> torch.Tensor:
        """The target of each image of ``batch`` from :meth:`style_targets`' result: its style's row (N×…) for a
        multi-style network, else the one target (1×…, broadcast over the batch)."""
        if batch.style is None or len(targets) == 1:
            return targets
        return targets[batch.style.to(targets.device)]

    def forward(self, batch: LossBatch) -> torch.Tensor:
        """Return the unweighted loss of each image in the batch, shape (N,)."""
        raise NotImplementedError


class NetworkLayerLoss(LossTerm):
    """A term comparing one layer of another network (a depth network, HED…) between ŷ and x.

    Subclasses say which network (:meth:`network_spec`) and have a ``layer`` option; the
    comparison defaults to the content loss's ``||a − b||² / (C·H·W)``.
    """

    def network_spec(self) -> features.NetworkSpec:
        raise NotImplementedError

    def networks(self) -> list[features.NetworkSpec]:
        return [self.network_spec()]

    def taps(self) -> list[features.Tap]:
        return [features.Tap(self.options.layer, self.network_spec().key)]

    def compare(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return functional.feature_reconstruction(output, content)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        tap = self.taps()[0]
        return self.compare(batch.output_features[tap].float(), batch.content_features[tap].float())
