"""Single-image depth networks (φ1 in Liu et al. 2017) as a plugin kind.

A depth network takes stylekit images (RGB, [0, 255], N×3×H×W, any H and W),
does its own preprocessing and resizing, and returns an N×1×H×W map at the input's
size. It is frozen, in eval mode, and differentiable with respect to its input, so
a loss on φ1(ŷ) trains the transformer. ``output_kind`` says what the map means;
all these networks are relative (unknown per-image scale and shift).

Encoder sharing: a network whose frozen encoder is a perception backbone (same architecture, same weights) says
which in :meth:`DepthNetwork.shared_encoder`; :class:`~stylekit.features.Perception` then builds it on the
backbone's instance (one copy in memory) and, where the network feeds its encoder the image as given
(:meth:`DepthNetwork.runs_at_input_size`), serves its encoder from the backbone's forward and calls
:meth:`DepthNetwork.decode` (one encoder pass per image).

Sizing: a network with a published transform (``transform``, a :class:`~.transforms.Resize`) is fed
what its authors' code feeds it and its map goes back to the image size as their script does
(option ``resize: authors``, the default); ``resize: pad`` keeps the aspect ratio at a shorter side of
``input_size`` and pads to ``size_multiple`` instead (what networks without a published transform do).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..components import ComponentOptions
from ..features import NetworkSpec
from ..weights import FrozenNetwork
from .transforms import Resize

OUTPUT_LAYER = "output"


class DepthOptions(ComponentOptions):
    weights: str = Field("default", description="'default' (the network's published weights), 'random' "
                                                "(random init, for tests) or a local file.")
    input_size: int | None = Field(None, ge=16, description="The size the network runs at (default: the network's "
                                   "own): with resize 'authors' the height of its published transform's target "
                                   "(MiDaS's net_h = net_w, Depth Anything's input_size), with 'pad' the shorter side. "
                                   "The map is resized back to the input size.")
    resize: Literal["authors", "pad"] = Field("authors", description="'authors': size the input as the network's "
                                              "published code does (see its docstring); 'pad': keep the aspect ratio, "
                                              "shorter side input_size, pad to the network's multiple. Networks "
                                              "without a published transform always use 'pad'.")


class DepthNetwork(FrozenNetwork):
    """Base class: implement :meth:`infer` on preprocessed, resized input; the base handles sizes."""

    kind: ClassVar[str] = "depth"
    Options: ClassVar[type[ComponentOptions]] = DepthOptions
    #: 'inverse_depth' (larger = nearer, like MiDaS) or 'depth' (larger = farther)
    output_kind: ClassVar[Literal["inverse_depth", "depth"]] = "inverse_depth"
    license: ClassVar[str] = ""
    #: the authors' input sizing and map restoration (None: no published transform, always 'pad')
    transform: ClassVar[Resize | None] = None
    #: for 'pad': default shorter side the network is run at, and the multiple H and W are padded to
    default_input_size: ClassVar[int | None] = None
    size_multiple: ClassVar[int] = 1

    # -- subclass API ---------------------------------------------------------
    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Network on images already resized/padded (still RGB 0–255): N×1×h×w."""
        raise NotImplementedError

    def intermediate_layers(self) -> list[str]:
        """Names usable as ``layer`` besides 'output' (see :meth:`infer_layers`)."""
        return []

    def infer_layers(self, images: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Intermediate feature maps on resized/padded input; override together with ``intermediate_layers``."""
        raise ValueError(f"depth network {self.name!r} exposes no intermediate layers")

    # -- encoder sharing (optional) -------------------------------------------
    @classmethod
    def shared_encoder(cls, options: ComponentOptions | dict[str, Any] | None = None) -> NetworkSpec | None:
        """The backbone whose instance can be this network's encoder when built with ``options`` (same
        architecture, same weights, same input normalization), or None (the default): the network has its own.

        A network that names one accepts ``encoder=<that backbone>`` in its constructor and implements
        :meth:`encoder_layers` and :meth:`decode`.
        """
        return None

    def encoder_layers(self) -> dict[str, str]:
        """This network's encoder layers (its intermediate layer names) → the shared backbone's layer names."""
        raise NotImplementedError(f"depth network {self.name!r} does not share its encoder")

    def decode(self, features: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The map (N×1×H×W, ``size``) from its encoder's features of an image of that size, keyed as in
        :meth:`encoder_layers`; equals :meth:`predict` wherever :meth:`runs_at_input_size` holds."""
        raise NotImplementedError(f"depth network {self.name!r} does not share its encoder")

    def encoder_request(self, layers: Iterable[str]) -> list[str]:
        """The shared backbone's layers that :meth:`from_encoder` needs for ``layers`` of this network."""
        layers = self._checked(layers)
        mapping = self.encoder_layers()
        return list(mapping.values()) if OUTPUT_LAYER in layers else [mapping[name] for name in layers]

    def from_encoder(self, encoded: dict[str, torch.Tensor], layers: Iterable[str],
                     size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """What :meth:`forward` returns for ``layers``, from the shared backbone's features (``encoded``, keyed by
        its layer names) of an image of ``size`` for which :meth:`runs_at_input_size` holds."""
        features = {own: encoded[theirs] for own, theirs in self.encoder_layers().items() if theirs in encoded}
        return {name: self.decode(features, size) if name == OUTPUT_LAYER else features[name]
                for name in self._checked(layers)}

    def runs_at_input_size(self, size: tuple[int, int]) -> bool:
        """Whether images of ``size`` reach the encoder as given (not resized, not padded): then a backbone's
        features of the image are exactly this network's encoder features."""
        size = (int(size[0]), int(size[1]))
        known = self.__dict__.setdefault("_runs_as_given", {})
        if size not in known:
            probe = torch.empty((1, 3, *size), device="meta")
            try:
                known[size] = self._prepare(probe)[0] is probe
            except Exception:  # noqa: BLE001 - an operation meta tensors lack means the input is transformed
                known[size] = False
        return known[size]

    # -- shared behavior -----------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return [OUTPUT_LAYER, *self.intermediate_layers()]

    def published_transform(self) -> Resize | None:
        """The authors' transform at ``input_size`` when ``resize`` is 'authors', else None."""
        if self.transform is None or getattr(self.options, "resize", "authors") != "authors":
            return None
        return self.transform.at(self.options.input_size)

    def _prepare(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """The network's input for ``images`` and the part of it (top-left h×w) that holds the image."""
        transform = self.published_transform()
        if transform is not None:
            x = transform(images)
            return x, tuple(x.shape[-2:])
        h, w = images.shape[-2:]
        size = self.options.input_size or self.default_input_size
        x = images
        if size and min(h, w) != size:
            scale = size / min(h, w)
            x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                              align_corners=False, antialias=scale < 1)
        m = self.size_multiple
        ph, pw = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x, (x.shape[-2] - ph, x.shape[-1] - pw)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Depth/inverse-depth map at the input's size: N×1×H×W."""
        h, w = images.shape[-2:]
        x, (vh, vw) = self._prepare(images)
        out = self.infer(x)[..., :vh, :vw]
        transform = self.published_transform()
        if transform is not None:
            return transform.restore(out, (h, w))
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out

    def forward(self, images: torch.Tensor, layers: Iterable[str] = (OUTPUT_LAYER,)) -> dict[str, torch.Tensor]:
        """The perception-network protocol: ``{layer: tensor}`` for 'output' and/or intermediate layers."""
        layers = self._checked(layers)
        out: dict[str, torch.Tensor] = {}
        if OUTPUT_LAYER in layers:
            out[OUTPUT_LAYER] = self.predict(images)
        rest = [name for name in layers if name != OUTPUT_LAYER]
        if rest:
            x, _ = self._prepare(images)
            out.update(self.infer_layers(x, rest))
        return out

    def _checked(self, layers: Iterable[str]) -> list[str]:
        layers = list(layers)
        unknown = [name for name in layers if name not in self.layer_names]
        if unknown:
            raise ValueError(f"depth network {self.name!r} has no layer(s) {unknown}; "
                             f"its layers are: {', '.join(self.layer_names)}")
        return layers
