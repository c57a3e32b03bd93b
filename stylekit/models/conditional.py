"""One network, many styles: conditional instance normalization (Dumoulin, Shlens & Kudlur, ICLR 2017,
"A Learned Representation for Artistic Style").

Every normalization layer of a transformer keeps its normalization but loses its own affine; in its place a
γ/β pair *per style*: two S×C matrices (S styles, C channels), the only weights a style owns. Everything else
is shared. As the authors' code (magenta, ``magenta/models/image_stylization/``):

- ``ops.py`` ``conditional_instance_norm``: ``gamma`` and ``beta`` variables of shape
  ``[num_categories] + [channels]`` per normalization layer, initialized to ones and zeros, a row picked per
  batch element by its label (``tf.gather(var, labels)``), with the moments over height and width;
- ``model.py`` ``transform``: the normalizer follows *every* conv, the last one (3 channels) included, so
  each style also sets the output's per-channel statistics (here ``output_norm``, on by default);
- ``ops.py`` ``weighted_instance_norm``: styles are blended by mixing γ and β with weights over the styles
  (``reduce_sum(weights * var, 0)``), which is what ``style={"wave": 0.6, "udnie": 0.4}`` does;
- ``image_stylization_finetune.py``: a style is added by training only the normalization parameters
  (stylekit's ``model.train: new_styles`` trains only the new styles' rows).

Differences: the output is Johnson's scaled tanh (magenta: a sigmoid), and the normalization is the recipe's
(``norm``: instance, batch or instance_floor, whatever :func:`~stylekit.models.transformer._norm` offers), with
its own affine removed; its running statistics (batch, instance_floor) stay shared.

The conditioning is set on the normalization layers for one forward pass (:meth:`Conditional.conditioned`),
so one network instance runs one forward pass at a time.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Union

import torch
from pydantic import BaseModel, Field, field_validator
import torch.nn.functional as F
from torch import nn

from ..errors import StylekitError
from .fast_layers import use_fast_layers
from .lite import LiteNet, LiteOptions
from .transformer import TransformerNet, TransformerOptions, _norm

#: what picks a style: a name or index, a mixture {name: weight}, "wave=0.6,udnie=0.4", or S weights
StyleSpec = Union[str, int, Mapping[str, float], torch.Tensor]
#: most styles a network file may declare (magenta trained 32; the peer ships 26)
MAX_STYLES = 4096


class StyleError(StylekitError):
    """A style name, index or mixture this network cannot use."""


class ConditionalNorm(nn.Module):
    """A normalization layer without its own affine, followed by the affine of the current style (mixture).

    ``gamma`` and ``beta`` are S×C (a row per style, as magenta's ``conditional_instance_norm``); ``mix``, set
    for one forward pass, is the N×S (or 1×S) weights over the styles, one-hot for a single style.
    """

    def __init__(self, norm: nn.Module, styles: int):
        super().__init__()
        channels = next(p for name, p in norm.named_parameters() if name == "weight").shape[0]
        for name, value in (("weight", 1.0), ("bias", 0.0)):  # the norm's own affine becomes the identity
            if isinstance(getattr(norm, name, None), nn.Parameter):
                delattr(norm, name)
                norm.register_buffer(name, torch.full((channels,), value), persistent=False)
        self.norm = norm
        self.gamma = nn.Parameter(torch.ones(styles, channels))
        self.beta = nn.Parameter(torch.zeros(styles, channels))
        self.mix: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise StyleError("this multi-style network needs a style: call it as net(images, style)")
        weights = self.mix.to(self.gamma.dtype).unsqueeze(-1)  # N×S×1; elementwise, so no autocast rounding
        gamma, beta = (weights * self.gamma).sum(1), (weights * self.beta).sum(1)
        if len(gamma) == 1 and type(self.norm) is nn.InstanceNorm2d:  # one style for all: instance norm's own affine
            return F.instance_norm(x, weight=gamma[0], bias=beta[0], eps=self.norm.eps)
        return self.norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class StyleOptions(BaseModel):
    """The options every conditional network adds to its base network's."""

    styles: list[str] = Field(..., min_length=1, description="The styles' names, one per `style.images` entry "
                                                            "and in its order (default: the images' file names).")
    output_norm: bool = Field(True, description="A conditional norm after the last conv too, as Dumoulin et al.'s "
                                                "code (each style sets the output's statistics); false: Johnson's "
                                                "plain last conv.")

    @field_validator("styles")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each style needs its own name; {', '.join(twice)} appears more than once")
        if any(not name.strip() or "=" in name or "," in name for name in names):
            raise ValueError("style names must be non-empty and hold no '=' or ',' (they are written in blends: "
                             "wave=0.6,udnie=0.4)")
        return names


class Conditional:
    """Mixin turning a :class:`~stylekit.models.transformer.TransformerNet` subclass into its multi-style form:
    every normalization layer the base builds becomes a :class:`ConditionalNorm` (plus one after the last
    conv with ``output_norm``); everything else, state-dict keys included, is the base network's."""

    def __init__(self, options=None, *, fast: bool = True):
        super().__init__(options, fast=False)
        count = len(self.options.styles)
        norm_type = type(_norm(self.options.norm, 1))
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is norm_type:
                    setattr(parent, name, ConditionalNorm(child, count))
        self.out_norm = ConditionalNorm(_norm(self.options.norm, 3), count) if self.options.output_norm else None
        if fast:
            use_fast_layers(self)

    @property
    def styles(self) -> list[str]:
        return list(self.options.styles)

    def conditional_norms(self) -> list[ConditionalNorm]:
        return [m for m in self.modules() if isinstance(m, ConditionalNorm)]

    def style_parameters(self) -> list[nn.Parameter]:
        """The γ/β matrices: the only weights that belong to styles."""
        return [p for norm in self.conditional_norms() for p in (norm.gamma, norm.beta)]

    def weights(self, style: StyleSpec | None, batch: int = 1) -> torch.Tensor:
        """``style`` as N×S (or 1×S) mixing weights: N labels → one-hot rows; a name, index, mixture or spec text
        (:func:`style_weights`) → one row."""
        names = self.styles
        if style is None:
            raise StyleError(f"this network has {len(names)} styles ({', '.join(names)}); choose one, e.g. "
                             f"style={names[0]!r}, or blend them, e.g. style={{{names[0]!r}: 0.5, {names[-1]!r}: 0.5}}")
        if isinstance(style, torch.Tensor) and not style.is_floating_point():
            if style.ndim != 1 or style.numel() not in (1, batch) or not bool(((style >= 0) & (style < len(names))).all()):
                raise StyleError(f"style labels must be {batch} indices in [0, {len(names)}); got {style.tolist()}")
            return nn.functional.one_hot(style, len(names)).float()
        if not isinstance(style, torch.Tensor):
            style = style_weights(style, names)
        rows = style.reshape(-1, style.shape[-1]) if style.ndim else style
        if style.ndim not in (1, 2) or rows.shape[-1] != len(names) or rows.shape[0] not in (1, batch):
            raise StyleError(f"style weights must be S={len(names)} values (or N×S); got shape {tuple(style.shape)}")
        return rows.float()

    @contextmanager
    def conditioned(self, style: StyleSpec | None, batch: int = 1) -> Iterator[torch.Tensor]:
        """Condition every :class:`ConditionalNorm` on ``style`` for the forward passes inside the block."""
        weights = self.weights(style, batch).to(next(self.parameters()).device)
        norms = self.conditional_norms()
        for norm in norms:
            norm.mix = weights
        try:
            yield weights
        finally:
            for norm in norms:
                norm.mix = None

    def styled(self, style: StyleSpec) -> StyledNetwork:
        """This network with ``style`` fixed: a module taking images only, for code that runs any network."""
        return StyledNetwork(self, self.weights(style))

    def export_body(self, x: torch.Tensor) -> torch.Tensor:
        y = super().export_body(x)
        return self.out_norm(y) if self.out_norm is not None else y

    def forward(self, images: torch.Tensor, style: StyleSpec | None = None) -> torch.Tensor:
        with self.conditioned(style, len(images)):
            return super().forward(images)

    @classmethod
    def size_problem(cls, options) -> str | None:
        if len(options.styles) > MAX_STYLES:
            return f"{len(options.styles)} styles: stylekit accepts at most {MAX_STYLES}"
        return super().size_problem(options)


class StyledNetwork(nn.Module):
    """A multi-style network with its style (mixture) fixed: images in, stylized images out."""

    def __init__(self, net: Conditional, weights: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("weights", weights.reshape(1, -1).float(), persistent=False)

    @property
    def styles(self) -> list[str]:
        return self.net.styles

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.weights)


class ConditionalOptions(StyleOptions, TransformerOptions):
    pass


class ConditionalLiteOptions(StyleOptions, LiteOptions):
    pass


class ConditionalNet(Conditional, TransformerNet):
    """Dumoulin et al.'s multi-style network: Johnson's layout, a γ/β pair per style in every norm layer."""

    name = "cin"
    Options = ConditionalOptions


class ConditionalLiteNet(Conditional, LiteNet):
    """The multi-style form of `lite`: its layout, a γ/β pair per style in every norm layer (Dumoulin et al.)."""

    name = "cin_lite"
    Options = ConditionalLiteOptions


def style_weights(spec: StyleSpec, names: list[str]) -> torch.Tensor:
    """Weights over ``names`` (summing to 1) from a style's name or index (``"udnie"``, ``3``), a mixture
    (``{"wave": 0.6, "udnie": 0.4}``) or its text (``"wave=0.6,udnie=0.4"``); weights are rescaled to sum to 1."""
    example = f"e.g. {names[0]!r} or '{names[0]}=0.6,{names[-1]}=0.4'"
    if isinstance(spec, torch.Tensor):
        weights = spec.float().reshape(-1)
    else:
        if isinstance(spec, str):
            parts = [p.strip() for p in spec.split(",") if p.strip()]
            if not parts:
                raise StyleError(f"style {spec!r} is empty; give a style name, {example}")
            spec = _parse_mixture(spec, parts, example)
        elif isinstance(spec, int) and not isinstance(spec, bool):
            spec = {spec: 1.0}
        if not isinstance(spec, Mapping):
            raise StyleError(f"style {spec!r}: give a style name, a mapping of names to weights, {example}")
        weights = torch.zeros(len(names))
        for key, value in spec.items():
            weights[_index(key, names)] += float(value)
    if weights.numel() != len(names):
        raise StyleError(f"style weights must be {len(names)} values (one per style: {', '.join(names)})")
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise StyleError(f"style weights must be finite, not negative and not all 0; got {weights.tolist()}")
    return weights / weights.sum()


def _parse_mixture(text: str, parts: list[str], example: str) -> dict[str, float]:
    """``["udnie"]`` → {udnie: 1}; ``["wave=0.6", "udnie=0.4"]`` → {wave: 0.6, udnie: 0.4}."""
    if len(parts) == 1 and "=" not in parts[0]:
        return {parts[0]: 1.0}
    mixture: dict[str, float] = {}
    for part in parts:
        name, _, value = part.partition("=")
        try:
            mixture[name.strip()] = mixture.get(name.strip(), 0.0) + float(value)
        except ValueError:
            raise StyleError(f"style {text!r}: a blend is NAME=WEIGHT pairs separated by commas, {example}") from None
    return mixture


def _index(key: str | int, names: list[str]) -> int:
    if isinstance(key, str) and key in names:
        return names.index(key)
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        if 0 <= int(key) < len(names):
            return int(key)
    raise StyleError(f"unknown style {key!r}; this network's styles are: {', '.join(names)} (or their "
                     f"indices 0–{len(names) - 1})")
