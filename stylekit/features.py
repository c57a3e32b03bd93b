"""Runs each perception network once per batch for all the taps every term asked for.

Terms name networks by :class:`NetworkSpec` (kind, registry name, options); the
:class:`Perception` builds each distinct spec once, so a depth term and an
evaluation metric that ask for the same network share one instance. The recipe's
perception backbone is also reachable under the alias ``"backbone"``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
from torch import nn

from .losses.base import Features, NetworkSpec, Tap

BACKBONE = "backbone"

__all__ = ["BACKBONE", "NetworkSpec", "Perception"]


class Perception(nn.Module):
    """The frozen networks of a run, each built once, and feature extraction over them."""

    def __init__(self, registry=None, networks: dict[str, nn.Module] | None = None):
        super().__init__()
        self.registry = registry
        self.nets = nn.ModuleDict()
        self.aliases: dict[str, str] = {}
        for key, net in (networks or {}).items():
            self.add(key, net)

    def add(self, key: str, network: nn.Module) -> None:
        if key in self.nets and self.nets[key] is not network:
            raise ValueError(f"two different networks registered as {key!r}")
        network.requires_grad_(False)
        self.nets[key] = network.eval()

    def require(self, spec: NetworkSpec, alias: str | None = None) -> nn.Module:
        """Build ``spec`` unless already built; optionally give it an alias such as 'backbone'."""
        if spec.key not in self.nets:
            if self.registry is None:
                raise ValueError(f"cannot build {spec.key}: this Perception has no registry")
            self.add(spec.key, spec.build(self.registry))
        if alias is not None:
            self.aliases[alias] = spec.key
        return self.nets[spec.key]

    def network(self, key: str) -> nn.Module:
        key = self.aliases.get(key, key)
        if key not in self.nets:
            raise KeyError(f"no network {key!r}; available: {', '.join([*self.aliases, *self.nets])}")
        return self.nets[key]

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
