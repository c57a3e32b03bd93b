"""Any timm model as a perception backbone, through ``features_only``.

Layer names are timm's feature-module names (``timm.create_model(m, features_only=True).feature_info.module_name()``).
"""

from __future__ import annotations

import os
from typing import Iterable

import torch
from pydantic import Field

from ..errors import WeightsNotFoundError
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from ..weights import offline, weights_dir
from .base import Backbone, BackboneOptions


class TimmOptions(BackboneOptions):
    model: str = Field("resnet50", description="Any timm model name that supports features_only "
                       "(see `timm.list_models()`).")
    weights: str = Field("default", description="'default' (timm's pretrained weights, via its cache), "
                         "'random', or a local weights file.")


class TimmBackbone(Backbone):
    """Any timm model (features_only); normalisation from its pretrained config."""

    name = "timm"
    Options = TimmOptions

    def __init__(self, options=None):
        super().__init__(options)
        import timm

        opts = self.options
        kwargs: dict = {"features_only": True, "pretrained": opts.weights != "random"}
        local = None if opts.weights in ("default", "random") else opts.weights
        wdir = weights_dir()
        if local is None and opts.weights == "default" and wdir is not None:
            for suffix in (".safetensors", ".pth", ".bin"):
                if (wdir / f"{opts.model}{suffix}").is_file():
                    local = str(wdir / f"{opts.model}{suffix}")
                    break
        if local is not None:
            if not os.path.isfile(local):
                raise WeightsNotFoundError(f"weights for timm model {opts.model}: {local} does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": local}
        elif kwargs["pretrained"] and offline():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.net = timm.create_model(opts.model, **kwargs)
        except Exception as exc:
            if not kwargs["pretrained"]:
                raise
            where = f"{wdir}/{opts.model}.safetensors" if wdir else f"<DIR>/{opts.model}.safetensors (--weights-dir DIR)"
            raise WeightsNotFoundError(
                f"pretrained weights for timm model {opts.model!r} could not be loaded ({type(exc).__name__}: {exc}). "
                f"Offline, put them at {where} or pass backbone.options.weights=/path/to/file."
            ) from exc
        self._names = list(self.net.feature_info.module_name())
        cfg = self.net.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", IMAGENET_MEAN)).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", IMAGENET_STD)).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.freeze()

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = self.check_layers(layers)
        feats = self.net((images - self.mean) / self.std)
        by_name = dict(zip(self._names, feats))
        return {name: by_name[name] for name in wanted}
