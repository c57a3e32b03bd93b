"""Perception: which features a term needs (:class:`Tap`), of which network (:class:`NetworkSpec`), and
the one cache that builds each network once and runs it once per batch (:class:`Perception`).

Terms name networks by :class:`NetworkSpec` (kind, registry name, options); a :class:`Perception`
builds each distinct spec once. Training gives every loss term the run's Perception, and evaluation
(:class:`~stylekit.evaluate.EvalNetworks`) gets its networks through one as well, so two terms, or two
metrics, that ask for the same network share one instance — and an evaluation handed the run's
Perception shares the terms' instances too. The recipe's perception backbone is also reachable under
the alias ``"backbone"``.

Two specs that differ only in how their options are written (``{}`` and ``{"weights": "default"}``) are one
network. A network built on a frozen encoder that equals an already-built backbone (a depth network that says
so with ``shared_encoder``, e.g. ``hed_depth_lite`` on ``hed_vgg16``) is built on that backbone's instance, and
where it feeds its encoder the image as given, :meth:`Perception.extract` adds its encoder layers to the
backbone's request and decodes from those: one encoder pass per image, one copy in memory.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple
from urllib.parse import unquote

import torch
from pydantic import BaseModel
from torch import nn

BACKBONE = "backbone"

__all__ = ["BACKBONE", "Features", "NetworkSpec", "Perception", "Tap"]


class Tap(NamedTuple):
    """One feature map a term needs: ``layer`` of the network registered as ``network``."""

    layer: str
    network: str = BACKBONE


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
    def label(self) -> str:
        """For people: ``hed_depth_lite (encoder_weights=random)``; file options by their file name."""
        options = ", ".join(f"{k}={Path(v).name if isinstance(v, str) and '/' in v else v}"
                            for k, v in self.options.items())
        return self.name + (f" ({options})" if options else "")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}" + ("" if self.options_json == "{}" else f":{self.options_json}")

    def build(self, registry, **extra) -> nn.Module:
        return registry.build(self.kind, self.name, self.options, **extra)


class Features(dict):
    """Feature maps keyed by :class:`Tap`; a plain string means a layer of the perception backbone."""

    def __getitem__(self, key):
        if isinstance(key, str):
            key = Tap(key)
        return super().__getitem__(key)


def module_name(key: str) -> str:
    """A network key as a submodule name: spec keys may hold file paths, and module names may not contain '.'."""
    return key.replace("%", "%25").replace(".", "%2E")


class Perception(nn.Module):
    """The frozen networks of a training run or an evaluation, each built once per spec, and feature extraction.

    Networks are frozen (no gradient into their weights) and in eval mode; ``require`` is the cache.
    ``nets`` holds them under :func:`module_name` of their key (a spec's options may name files).
    """

    def __init__(self, registry=None, networks: dict[str, nn.Module] | None = None):
        super().__init__()
        self.registry = registry
        self.nets = nn.ModuleDict()
        #: another name → the key a network is stored under ('backbone', or a spec equal to a built one)
        self.aliases: dict[str, str] = {}
        #: the spec each network was built from, by key
        self.specs: dict[str, NetworkSpec] = {}
        #: network key → key of the backbone whose instance is its encoder
        self.shared_encoders: dict[str, str] = {}
        for key, net in (networks or {}).items():
            self.add(key, net)

    def add(self, key: str, network: nn.Module) -> None:
        name = module_name(key)
        if name in self.nets and self.nets[name] is not network:
            raise ValueError(f"two different networks registered as {key!r}")
        network.requires_grad_(False)
        self.nets[name] = network.eval()

    def require(self, spec: NetworkSpec, alias: str | None = None) -> nn.Module:
        """Build ``spec`` unless it (or an equal spec) is built; optionally give it an alias such as 'backbone'."""
        key = self.resolve(spec.key)
        if module_name(key) not in self.nets:
            if self.registry is None:
                raise ValueError(f"cannot build {spec.key}: this Perception has no registry")
            equal = self._built_equal(spec)
            if equal is not None:
                self.aliases[spec.key] = key = equal
            else:
                self.add(key, self._build(spec))
                self.specs[key] = spec
        if alias is not None:
            self.aliases[alias] = key
        return self.nets[module_name(key)]

    def resolve(self, key: str) -> str:
        """The key a network is stored under, for a key or an alias."""
        return self.aliases.get(key, key)

    def _canonical(self, spec: NetworkSpec) -> tuple[str, str, str]:
        """``spec`` with its options validated and defaults filled in, so equal networks compare equal."""
        try:
            options = self.registry.get(spec.kind, spec.name).parse_options(spec.options).model_dump(mode="json")
        except Exception:  # noqa: BLE001 - options that do not validate fail when built, not here
            options = spec.options
        return spec.kind, spec.name, json.dumps(options, sort_keys=True)

    def _built_equal(self, spec: NetworkSpec) -> str | None:
        wanted = self._canonical(spec)
        return next((key for key, built in self.specs.items() if self._canonical(built) == wanted), None)

    def _build(self, spec: NetworkSpec) -> nn.Module:
        """The network, on a built backbone's instance when its ``shared_encoder`` names one that is built."""
        cls = self.registry.get(spec.kind, spec.name)
        shared = getattr(cls, "shared_encoder", None)
        encoder_spec = shared(spec.options) if shared is not None else None
        encoder_key = self._built_equal(encoder_spec) if encoder_spec is not None else None
        if encoder_key is None:
            return spec.build(self.registry)
        self.shared_encoders[spec.key] = encoder_key
        return spec.build(self.registry, encoder=self.nets[module_name(encoder_key)])

    def network(self, key: str) -> nn.Module:
        name = module_name(self.resolve(key))
        if name not in self.nets:
            available = [*self.aliases, *(unquote(n) for n in self.nets)]
            raise KeyError(f"no network {key!r}; available: {', '.join(available)}")
        return self.nets[name]

    def extract(self, images: torch.Tensor, taps: Iterable[Tap]) -> Features:
        """The taps' feature maps of ``images``: each network runs once, a shared encoder once for all its users."""
        taps = list(taps)
        wanted: dict[str, list[str]] = defaultdict(list)
        for tap in taps:
            key = self.resolve(tap.network)
            if tap.layer not in wanted[key]:
                wanted[key].append(tap.layer)
        size = tuple(images.shape[-2:])
        decoded: dict[str, list[str]] = {}
        for key in [k for k in wanted if k in self.shared_encoders]:
            net = self.network(key)
            if net.runs_at_input_size(size):  # its encoder would see exactly what the backbone sees
                decoded[key] = wanted.pop(key)
                encoder_layers = wanted[self.shared_encoders[key]]
                encoder_layers += [name for name in net.encoder_request(decoded[key]) if name not in encoder_layers]
        outputs = {key: self.network(key)(images, layers) for key, layers in wanted.items()}
        for key, layers in decoded.items():
            outputs[key] = self.network(key).from_encoder(outputs[self.shared_encoders[key]], layers, size)
        return Features({tap: outputs[self.resolve(tap.network)][tap.layer] for tap in taps})
