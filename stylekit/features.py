"""Runs each perception network once per batch for all the taps every term asked for."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import torch
from torch import nn

from .losses.base import Features, Tap


class Perception(nn.Module):
    """The named, frozen networks of a run (``backbone`` plus any a term brings)."""

    def __init__(self, networks: dict[str, nn.Module]):
        super().__init__()
        self.nets = nn.ModuleDict(networks)

    def add(self, name: str, network: nn.Module) -> None:
        if name in self.nets and self.nets[name] is not network:
            raise ValueError(f"two different networks registered as {name!r}")
        self.nets[name] = network

    def extract(self, images: torch.Tensor, taps: Iterable[Tap]) -> Features:
        by_network: dict[str, list[str]] = defaultdict(list)
        for tap in taps:
            if tap.network not in self.nets:
                raise KeyError(f"no network {tap.network!r}; available: {', '.join(self.nets)}")
            if tap.layer not in by_network[tap.network]:
                by_network[tap.network].append(tap.layer)
        features = Features()
        for network, layers in by_network.items():
            for layer, value in self.nets[network](images, layers).items():
                features[Tap(layer, network)] = value
        return features
