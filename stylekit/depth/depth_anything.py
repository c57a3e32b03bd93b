"""Depth Anything V2 (Yang et al. 2024) through Hugging Face ``transformers`` (optional extra ``stylekit[hf]``).

The default is the Small model (``depth-anything/Depth-Anything-V2-Small-hf``, Apache-2.0; the Base and
Large checkpoints are CC-BY-NC-4.0). Weights come from the Hugging Face cache (downloaded on first use
unless stylekit is offline, in which case only the cache is read). ``transformers`` is imported only
when the network is built, so stylekit works without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ..errors import ConfigError, StylekitError, WeightsNotFoundError
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from ..weights import WeightsFile, offline, resolve_weights, weights_dir
from .base import DepthNetwork, DepthOptions

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


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


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

    Preprocessing: shorter side 518, padded to a multiple of 14 (the HF processor resizes to a
    multiple instead), ImageNet mean/std on [0, 1].
    """

    name = "depth_anything_v2"
    Options = DepthAnythingOptions
    output_kind = "inverse_depth"
    license = "Apache-2.0 (Depth-Anything-V2-Small; Base/Large: CC-BY-NC-4.0)"
    weights_file = WeightsFile(filename=SMALL_ID, sha256=None, url=f"https://huggingface.co/{SMALL_ID}",
                               license="Apache-2.0",
                               how_to_get="Downloaded by transformers into the Hugging Face cache on first use; "
                                          "offline, run once online or pass a local model folder as `weights`.")
    default_input_size = 518
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
            else:
                path = resolve_weights(WeightsFile(filename=opts.weights, sha256=None), opts.weights,
                                       component=self.name)
                self.net = _build(TINY_CONFIG if opts.variant == "tiny" else self._config())
                result = self.net.load_state_dict(_read_state(path), strict=False)
                if result.missing_keys or result.unexpected_keys:
                    raise WeightsNotFoundError(
                        f"{path} does not match {opts.model} ({opts.variant}): missing {result.missing_keys[:5]}, "
                        f"unexpected {result.unexpected_keys[:5]}")
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
            return tf.AutoModelForDepthEstimation.from_pretrained(source, local_files_only=local)
        except Exception as exc:  # transformers raises OSError/ValueError/HF errors for a missing model
            raise WeightsNotFoundError(
                f"weights for depth_anything_v2: {source} could not be loaded ({type(exc).__name__}: {exc}). "
                f"Offline, fill the Hugging Face cache once online (or with `huggingface-cli download {source}`), "
                f"put the model folder at <DIR>/{source.rsplit('/', 1)[-1]} with --weights-dir DIR, or pass a "
                "local model folder as `weights`."
            ) from exc

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
