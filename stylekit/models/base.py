"""What every transformer network shares: the component a recipe's ``model.name`` picks.

A transformer network maps RGB images in [0, 255] (N×3×H×W, any H, W ≥ 5) to stylized images of the same
shape. It is registered through the ``stylekit_transformers`` hook like loss terms and backbones, built by the
registry from its validated options (``session.build_component("model", NAME, options)``), trained by the
same loss plugins, saved with its name and options in the checkpoint's metadata, and exported and loaded
through the same code whatever its layout.

A *multi-style* network (``styles`` non-empty) is conditioned on a style per image: ``net(images, style)``
with ``style`` the N style indices or an N×S (or 1×S) matrix of mixing weights over its S styles.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..components import Component, ComponentOptions


class TransformerNetwork(Component, nn.Module):
    """Base class of transformer networks. Subclasses set ``name`` and ``Options`` and implement ``forward``."""

    kind: ClassVar[str] = "model"
    Options: ClassVar[type[ComponentOptions]] = ComponentOptions
    #: options whose integer value bounds the network's size when read from a file: option → largest accepted
    size_limits: ClassVar[dict[str, int]] = {}

    @property
    def styles(self) -> list[str]:
        """The names of the styles a multi-style network is conditioned on; empty for a single-style one."""
        return []

    def plain(self) -> nn.Module:
        """The same function in plain, scriptable torch modules (TorchScript export); by default the network."""
        return self

    def export_body(self, x: torch.Tensor) -> torch.Tensor:
        """The network between the input scaling/padding and the output crop/tanh, for export wrappers that pad
        independently of the input's shape (:class:`stylekit.export.Deployable`)."""
        raise NotImplementedError(f"{type(self).__name__} does not support export")

    @classmethod
    def size_problem(cls, options: ComponentOptions) -> str | None:
        """Why ``options`` describe an absurdly large network (checked before building one from a file), or None."""
        too_big = {key: getattr(options, key) for key, limit in cls.size_limits.items()
                   if isinstance(getattr(options, key, None), int) and getattr(options, key) > limit}
        if not too_big:
            return None
        given = ", ".join(f"{key}={value}" for key, value in too_big.items())
        limits = ", ".join(f"{key} ≤ {limit}" for key, limit in cls.size_limits.items())
        return f"{given}: stylekit accepts {limits} for model {cls.name!r}"
