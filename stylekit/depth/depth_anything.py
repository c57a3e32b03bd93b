"""Depth Anything V2 (Yang et al. 2024) through Hugging Face ``transformers`` (optional extra ``stylekit[hf]``).

The default is the Small model (``depth-anything/Depth-Anything-V2-Small-hf``, Apache-2.0; the Base and
Large checkpoints are CC-BY-NC-4.0). Weights come from the Hugging Face cache (downloaded on first use
unless stylekit is offline, in which case only the cache is read). ``transformers`` is imported only
when the network is built, so stylekit works without it.

Preprocessing by default as the authors' ``DepthAnythingV2.image2tensor`` (DepthAnything/Depth-Anything-V2
``depth_anything_v2/dpt.py``, with ``Resize`` of ``depth_anything_v2/util/transform.py``): keep the aspect
ratio, both sides at least 518 ("lower_bound"), multiples of 14, bicubic; ImageNet mean/std on [0, 1];
``infer_image`` resizes the map back bilinearly with ``align_corners=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..errors import ConfigError, StylekitError, WeightsMismatchError, WeightsNotFoundError
from ..weights import WeightsFile, load_pretrained, offline, unwrap, weights_dir
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from .base import DepthNetwork, DepthOptions
from .transforms import Resize

SMALL_ID = "depth-anything/Depth-Anything-V2-Small-hf"

#: the architecture of Depth-Anything-V2-Small-hf (its config.json), so a saved state dict loads offline
SMALL_CONFIG = dict(
    backbone_config=dict(model_type="dinov2", hidden_size=384, num_attention_heads=6, image_size=518, patch_size=14,
                         out_indices=[3, 6, 9, 12], reshape_hidden_states=False),
    patch_size=14, reassemble_hidden_size=384, reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[48, 96, 192, 384],
    fusion_hidden_size=64, head_hidden_size=32, head_in_index=-1, depth_estimation_type="relative",
)
#: same topology, tiny widths: for tests (no published weights)
TINY_CONFIG = dict(
    backbone_config=dict(model_type="dinov2", hidden_size=32, num_attention_heads=2, num_hidden_layers=4,
                         intermediate_size=64, image_size=56, patch_size=14, out_indices=[1, 2, 3, 4],
                         reshape_hidden_states=False),
    patch_size=14, reassemble_hidden_size=32, reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=[8, 16, 32, 32],
    fusion_hidden_size=16, head_hidden_size=8, head_in_index=-1, depth_estimation_type="relative",
)


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise StylekitError(
            "depth network 'depth_anything_v2' needs Hugging Face transformers: pip install \"stylekit[hf]\""
        ) from exc
    return transformers


def _build(config: dict):
    tf = _transformers()
    cfg = dict(config)
    backbone = tf.Dinov2Config(**{k: v for k, v in cfg.pop("backbone_config").items() if k != "model_type"})
    return tf.AutoModelForDepthEstimation.from_config(tf.DepthAnythingConfig(backbone_config=backbone, **cfg))


class DepthAnythingOptions(DepthOptions):
    weights: str = Field("default", description="'default' (the Hugging Face model `model`, from the HF cache or "
                         "downloaded unless offline), 'random' (for tests), a local HF model folder, or a state-dict "
                         "file (.safetensors/.pt) of this architecture.")
    model: str = Field(SMALL_ID, description="Hugging Face model id (Depth-Anything-V2-Small-hf is Apache-2.0; "
                       "Base/Large are CC-BY-NC-4.0).")
    variant: Literal["full", "tiny"] = Field("full", description="'full': the model's architecture; 'tiny': the same "
                                             "topology at tiny widths, for fast tests (weights 'random' or a file).")


class DepthAnythingV2(DepthNetwork):
    """Depth Anything V2 Small via transformers (optional extra `hf`), relative inverse depth, 518 px.

    Preprocessing as DepthAnything/Depth-Anything-V2 ``depth_anything_v2/dpt.py`` ``image2tensor``: keep the
    aspect ratio, both sides at least 518 ("lower_bound"), multiples of 14, bicubic; ImageNet mean/std; the
    map back bilinear with align_corners=True (``infer_image``).
    """

    name = "depth_anything_v2"
    Options = DepthAnythingOptions
    output_kind = "inverse_depth"
    license = "Apache-2.0 (Depth-Anything-V2-Small; Base/Large: CC-BY-NC-4.0)"
    weights_file = WeightsFile(filename=SMALL_ID, sha256=None, url=f"https://huggingface.co/{SMALL_ID}",
                               no_checksum="a Hugging Face model repository, fetched and cached by huggingface_hub "
                                           "(which stores each file under its LFS sha256); stylekit pins no digest",
                               license="Apache-2.0",
                               how_to_get="Downloaded by transformers into the Hugging Face cache on first use; "
                                          "offline, run once online or pass a local model folder as `weights`.")
    transform = Resize(518, 518, "lower_bound", multiple=14, interpolation="bicubic", antialias=False,
                       output_interpolation="bilinear", output_align_corners=True,
                       source="DepthAnything/Depth-Anything-V2 depth_anything_v2/dpt.py (image2tensor, infer_image), "
                              "depth_anything_v2/util/transform.py Resize")
    default_input_size = 518  # resize 'pad'
    size_multiple = 14

    def __init__(self, options=None):
        super().__init__(options)
        opts = self.options
        if opts.variant == "tiny" and opts.weights == "default":
            raise ConfigError("depth network 'depth_anything_v2': variant 'tiny' has no published weights; "
                              "use weights: random or a file saved from a tiny build")
        if opts.weights == "default":
            self.net = self._from_hub()
        elif opts.weights == "random":
            self.net = _build(TINY_CONFIG if opts.variant == "tiny" else self._config())
        else:
            local = Path(opts.weights).expanduser()
            if local.is_dir():  # a saved Hugging Face model folder (config.json + weights)
                self.net = self._pretrained(str(local), local=True)
            else:  # a state dict of this architecture (.safetensors, or .pt/.pth, maybe under 'state_dict')
                self.net = _build(TINY_CONFIG if opts.variant == "tiny" else self._config())
                load_pretrained(self.net, self.weights_choice(), component=self.name,
                                what=f"{opts.model} ({opts.variant})", convert=lambda s: unwrap(s, "state_dict"))
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.freeze()

    def _config(self) -> dict:
        if self.options.model == SMALL_ID:
            return SMALL_CONFIG
        tf = _transformers()
        cfg = tf.AutoConfig.from_pretrained(self.options.model, local_files_only=offline()).to_dict()
        keep = set(SMALL_CONFIG)
        return {k: v for k, v in cfg.items() if k in keep}

    def _pretrained(self, source: str, local: bool):
        tf = _transformers()
        try:
            model, info = tf.AutoModelForDepthEstimation.from_pretrained(source, local_files_only=local,
                                                                       output_loading_info=True)
        except Exception as exc:  # transformers raises OSError/ValueError/HF errors for a missing model
            raise WeightsNotFoundError(
                f"weights for depth_anything_v2: {source} could not be loaded ({type(exc).__name__}: {exc}). "
                f"Offline, fill the Hugging Face cache once online (or with `huggingface-cli download {source}`), "
                f"put the model folder at <DIR>/{source.rsplit('/', 1)[-1]} with --weights-dir DIR, or pass a "
                "local model folder as `weights`."
            ) from exc
        # transformers only warns (and initializes randomly) where the files lack weights; stylekit refuses
        bad = {k: list(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if any(bad.values()):
            raise WeightsMismatchError(
                f"{source} does not fit its own config.json's architecture: "
                + "; ".join(f"{k.replace('_', ' ')} {v[:5]}" for k, v in bad.items() if v))
        return model

    def _from_hub(self):
        model = self.options.model
        wdir = weights_dir()
        if wdir is not None and (wdir / model.rsplit("/", 1)[-1]).is_dir():
            return self._pretrained(str(wdir / model.rsplit("/", 1)[-1]), local=True)
        if offline():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return self._pretrained(model, local=offline())

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        out = self.net(pixel_values=(images - self._mean) / self._std).predicted_depth
        return out.unsqueeze(1) if out.dim() == 3 else out
