"""Perception: which features a term needs (:class:`Tap`), of which network (:class:`NetworkSpec`), and
the one cache that builds each network once and runs it once per batch (:class:`Perception`).

Terms name networks by :class:`NetworkSpec` (kind, registry name, options); a :class:`Perception`
builds each distinct spec once. Training gives every loss term the run's Perception, and evaluation
(:class:`~stylekit.evaluate.EvalNetworks`) gets its networks through one as well, so two terms, or two
metrics, that ask for the same network share one instance — and an evaluation handed the run's
Perception shares the terms' instances too. The recipe's perception backbone is also reachable under
the alias ``"backbone"``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
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
        self.aliases: dict[str, str] = {}
        for key, net in (networks or {}).items():
            self.add(key, net)

    def add(self, key: str, network: nn.Module) -> None:
        name = module_name(key)
        if name in self.nets and self.nets[name] is not network:
            raise ValueError(f"two different networks registered as {key!r}")
        network.requires_grad_(False)
        self.nets[name] = network.eval()

    def require(self, spec: NetworkSpec, alias: str | None = None) -> nn.Module:
        """Build ``spec`` unless already built; optionally give it an alias such as 'backbone'."""
        if module_name(spec.key) not in self.nets:
            if self.registry is None:
                raise ValueError(f"cannot build {spec.key}: this Perception has no registry")
            self.add(spec.key, spec.build(self.registry))
        if alias is not None:
            self.aliases[alias] = spec.key
        return self.nets[module_name(spec.key)]

    def network(self, key: str) -> nn.Module:
        name = module_name(self.aliases.get(key, key))
        if name not in self.nets:
            available = [*self.aliases, *(unquote(n) for n in self.nets)]
            raise KeyError(f"no network {key!r}; available: {', '.join(available)}")
        return self.nets[name]

    def extract(self, images: torch.Tensor, taps: Iterable[Tap]) -> Features:
        by_network: dict[str, list[str]] = defaultdict(list)
        for tap in taps:
            if tap.layer not in by_network[tap.network]:
                by_network[tap.network].append(tap.layer)
        features = Features()
        for network, layers in by_network.items():
            for layer, value in self.network(network)(images, layers).items():
                features[Tap(layer, network)] = value
        return features
