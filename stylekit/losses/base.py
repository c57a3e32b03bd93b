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

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from pydantic import BaseModel, Field
from torch import nn

from ..components import Component, ComponentOptions

if TYPE_CHECKING:
    from ..features import Perception


class Tap(NamedTuple):
    """One feature map a term needs: ``layer`` of the network registered as ``network``."""

    layer: str
    network: str = "backbone"


@dataclass(frozen=True)
class NetworkSpec:
    """Which registered network, with which options; ``key`` is its name in :class:`Tap`."""

    kind: str
    name: str
    options_json: str = "{}"

    @classmethod
    def of(cls, kind: str, name: str, options: BaseModel | dict[str, Any] | None = None) -> "NetworkSpec":
        if isinstance(options, BaseModel):
            options = options.model_dump(mode="json")
        return cls(kind, name, json.dumps(options or {}, sort_keys=True))

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}" + ("" if self.options_json == "{}" else f":{self.options_json}")

    def build(self, registry) -> nn.Module:
        return registry.get(self.kind, self.name)(self.options)


class Features(dict):
    """Feature maps keyed by :class:`Tap`; a plain string means a layer of the perception backbone."""

    def __getitem__(self, key):
        if isinstance(key, str):
            key = Tap(key)
        return super().__getitem__(key)


@dataclass
class LossBatch:
    """Everything a term may look at for one training batch (images are RGB in [0, 255])."""

    output: torch.Tensor  # ŷ = transformer(x), requires grad
    content: torch.Tensor  # x
    output_features: Features
    content_features: Features  # computed under no_grad


@dataclass
class TermContext:
    """What a term may keep from the run, handed to :meth:`LossTerm.prepare` once before training."""

    perception: "Perception"  # the run's frozen networks; the recipe's backbone is network "backbone"
    style_images: list[torch.Tensor]  # each 1×3×H×W, RGB in [0, 255], on the training device
    device: torch.device


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

    def taps(self) -> list[Tap]:
        """Features needed on both ŷ and x (in ``batch.output_features`` and ``batch.content_features``)."""
        return []

    def output_taps(self) -> list[Tap]:
        """Features needed on ŷ only (``batch.output_features``), e.g. to compare with style targets.

        Declaring them here instead of in :meth:`taps` spares the no-grad pass on x those layers:
        with Johnson's recipe, VGG-16 on x then stops at relu2_2 instead of relu4_3.
        """
        return []

    def style_taps(self) -> list[Tap]:
        """Features needed on the style image(s); passed to :meth:`set_style` once before training."""
        return []

    def networks(self) -> list:
        """Extra networks this term taps (:class:`~stylekit.features.NetworkSpec`, beside the recipe's backbone).

        Use ``spec.key`` as the ``network`` of this term's :class:`Tap` objects.
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
    def perception(self) -> "Perception":
        """The run's :class:`~stylekit.features.Perception`, for features of images the term derives itself."""
        return self.context.perception

    def set_style(self, style_features: list[Features]) -> None:
        """Precompute style targets, one :class:`Features` per style image (its :meth:`style_taps`)."""

    def forward(self, batch: LossBatch) -> torch.Tensor:
        """Return the unweighted loss of each image in the batch, shape (N,)."""
        raise NotImplementedError


class _MeanSquaredDifference(torch.autograd.Function):
    """Per-item mean of ``(a − b)²`` with ``b`` constant; forward reduces in fp32, backward is one pass.

    Autograd of the plain expression would keep an fp32 copy of the difference and spend
    three full-size passes on the backward; this keeps only ``a − b`` in its own precision.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a - b
        ctx.save_for_backward(diff)
        dims = tuple(range(1, diff.dim()))
        accumulate = torch.promote_types(diff.dtype, torch.float32)
        norm = torch.linalg.vector_norm(diff, dim=dims, dtype=accumulate)
        return (norm.square() / diff[0].numel()).float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (diff,) = ctx.saved_tensors
        scale = (grad * (2.0 / diff[0].numel())).view(-1, *[1] * (diff.dim() - 1))
        grad_a = diff * scale.to(diff.dtype)
        return grad_a, (-grad_a if ctx.needs_input_grad[1] else None)


def feature_reconstruction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a − b||² / (C·H·W)`` for each item: shape (N,), float32.

    The difference is taken in the features' own precision (exact but for one rounding of
    each entry) and squared and summed in float32, without a full-size fp32 copy.
    """
    if a.dim() < 2:
        return (a - b).float().pow(2)
    if a.dtype != b.dtype:
        a, b = a.float(), b.float()
    return _MeanSquaredDifference.apply(a, b)


class NetworkLayerLoss(LossTerm):
    """A term comparing one layer of another network (a depth network, HED…) between ŷ and x.

    Subclasses say which network (:meth:`network_spec`) and have a ``layer`` option; the
    comparison defaults to the content loss's ``||a − b||² / (C·H·W)``.
    """

    def network_spec(self) -> NetworkSpec:
        raise NotImplementedError

    def networks(self) -> list[NetworkSpec]:
        return [self.network_spec()]

    def taps(self) -> list[Tap]:
        return [Tap(self.options.layer, self.network_spec().key)]

    def compare(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return feature_reconstruction(output, content)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        tap = self.taps()[0]
        return self.compare(batch.output_features[tap].float(), batch.content_features[tap].float())
