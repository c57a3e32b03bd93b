"""MiDaS depth networks (Ranftl et al.): v2.1 small (EfficientNet-Lite3) and v3 DPT hybrid / large.

The modules are laid out like isl-org/MiDaS (``pretrained.*`` encoder, ``scratch.*`` decoder; see
``midas/midas_net_custom.py``, ``midas/dpt_depth.py``, ``midas/blocks.py``, ``midas/backbones/vit.py``)
so the official release checkpoints load unchanged and strictly. The encoders are timm models created
with ``pretrained=False`` (weights come from the MiDaS checkpoint); the forward passes through their
blocks are our own, so timm API changes in forward helpers cannot break them (what broke MiDaS's own
``forward_flex`` before). Output: relative inverse depth (larger = nearer), ≥ 0.

Preprocessing by default as MiDaS's own (``midas/model_loader.py`` ``load_model`` per model type, with
``Resize`` of ``midas/transforms.py``; ``hubconf.py``'s ``small_transform``/``dpt_transform`` agree):
keep the aspect ratio, OpenCV ``INTER_CUBIC``, a multiple of 32; the map goes back to the image size with
bicubic interpolation (``run.py`` ``process``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..errors import ConfigError
from ..weights import WeightsFile, load_pretrained, resolve_choice, unwrap
from ..functional import IMAGENET_MEAN, IMAGENET_STD
from .base import DepthNetwork, DepthOptions
from .transforms import Resize

RELEASES = "https://github.com/isl-org/MiDaS/releases/download"
MIDAS_LICENSE = "MIT (isl-org/MiDaS)"

MIDAS_SMALL_WEIGHTS = WeightsFile(
    filename="midas_v21_small_256.pt",
    # also released as midas_v21_small-70d6b9c8.pt (torch-hub hash-prefix name); the full digest is
    # pinned by LibreYOLO's MiDaS loader and recorded in Hugging Face LFS pointers of copies of this file
    sha256="70d6b9c891758c67f974a6097fb0c608c7ee67fb81ac3e5588847d5596d56fca",
    url=f"{RELEASES}/v2_1/midas_v21_small_256.pt",
    license=MIDAS_LICENSE,
    how_to_get="MiDaS v2.1 small, from the isl-org/MiDaS GitHub release v2_1 (81.8 MiB).",
)
DPT_HYBRID_WEIGHTS = WeightsFile(
    filename="dpt_hybrid_384.pt",
    sha256=None,
    no_checksum="no sha256 of the MiDaS v3 asset dpt_hybrid_384.pt was found published (the release page lists "
                "none, and no copy of it with an LFS pointer was found); the DPT repository's "
                "dpt_hybrid-midas-501f0c75.pt is very likely the same bytes, but that is unverified",
    url=f"{RELEASES}/v3/dpt_hybrid_384.pt",
    license=MIDAS_LICENSE,
    how_to_get="MiDaS v3 DPT-Hybrid, from the isl-org/MiDaS GitHub release v3 (about 470 MiB).",
)
DPT_LARGE_WEIGHTS = WeightsFile(
    filename="dpt_large_384.pt",
    # same bytes as the DPT release's dpt_large-midas-2f21e586.pt (torch-hub hash-prefix name); full
    # digest pinned by LibreYOLO's MiDaS loader and recorded in Hugging Face LFS pointers
    sha256="2f21e586477d90cb9624c7eef5df7891edca49a1c4795ee2cb631fd4daa6ca69",
    url=f"{RELEASES}/v3/dpt_large_384.pt",
    license=MIDAS_LICENSE,
    how_to_get="MiDaS v3 DPT-Large, from the isl-org/MiDaS GitHub release v3 (1.28 GiB).",
)


# -- the shared RefineNet-style decoder (MiDaS blocks.py) ------------------------------------------

class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))) (MiDaS ``ResidualConvUnit_custom`` without batch norm)."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    """Adds the refined skip, refines, upsamples (bilinear, align_corners=True), projects (1×1)."""

    def __init__(self, features: int, out_features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, out_features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Interpolate(nn.Module):
    def __init__(self, scale_factor: float, align_corners: bool):
        super().__init__()
        self.scale_factor, self.align_corners = scale_factor, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=self.align_corners)


def _head(features: int, mid: int, align_corners: bool) -> nn.Sequential:
    """``scratch.output_conv``: conv, 2× upsample, conv, ReLU, 1×1 conv, ReLU (non-negative output)."""
    return nn.Sequential(
        nn.Conv2d(features, features // 2, 3, padding=1), Interpolate(2, align_corners),
        nn.Conv2d(features // 2, mid, 3, padding=1), nn.ReLU(), nn.Conv2d(mid, 1, 1), nn.ReLU(), nn.Identity())


def _scratch(in_channels: list[int], out_channels: list[int], fusion_out: list[int]) -> nn.Module:
    scratch = nn.Module()
    for i, (cin, cout) in enumerate(zip(in_channels, out_channels), start=1):
        setattr(scratch, f"layer{i}_rn", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
    for i, (cin, cout) in enumerate(zip(out_channels, fusion_out), start=1):
        setattr(scratch, f"refinenet{i}", FeatureFusionBlock(cin, cout))
    return scratch


def _midas_state(state) -> dict[str, torch.Tensor]:
    """MiDaS ``BaseModel.load`` (``midas/base_model.py``): a state dict, or ``{'model': …, 'optimizer': …}``."""
    return unwrap(state, "model")


def _timm():
    import timm

    return timm


# -- MiDaS v2.1 small ---------------------------------------------------------------------------

class MidasSmallNet(nn.Module):
    """MidasNet_small: EfficientNet-Lite3 stages as ``pretrained.layer1..4``, expanded decoder (64…512)."""

    def __init__(self, features: int = 64):
        super().__init__()
        effnet = _timm().create_model("tf_efficientnet_lite3", pretrained=False)
        blocks = effnet.blocks
        self.pretrained = nn.Module()
        # index 2 held gen-efficientnet's separate act1; timm fuses it into bn1 (BatchNormAct2d)
        act1 = getattr(effnet, "act1", nn.Identity())
        self.pretrained.layer1 = nn.Sequential(effnet.conv_stem, effnet.bn1, act1, *blocks[0:2])
        self.pretrained.layer2 = nn.Sequential(*blocks[2:3])
        self.pretrained.layer3 = nn.Sequential(*blocks[3:5])
        self.pretrained.layer4 = nn.Sequential(*blocks[5:9])
        widths = [features, features * 2, features * 4, features * 8]
        self.scratch = _scratch([32, 48, 136, 384], widths, [features, features, features * 2, features * 4])
        self.scratch.output_conv = _head(features, 32, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, s = self.pretrained, self.scratch
        l1 = p.layer1(x)
        l2 = p.layer2(l1)
        l3 = p.layer3(l2)
        l4 = p.layer4(l3)
        path = s.refinenet4(s.layer4_rn(l4))
        path = s.refinenet3(path, s.layer3_rn(l3))
        path = s.refinenet2(path, s.layer2_rn(l2))
        path = s.refinenet1(path, s.layer1_rn(l1))
        return s.output_conv(path)


# -- MiDaS v3 DPT ---------------------------------------------------------------------------------

class ProjectReadout(nn.Module):
    """DPT's 'project' readout: concat each patch token with the class token, Linear + GELU."""

    def __init__(self, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, 1:]
        return self.project(torch.cat([patches, tokens[:, :1].expand_as(patches)], dim=-1))


def _postprocess(dim: int, out: int, resample: nn.Module | None) -> nn.Sequential:
    """``act_postprocess{i}``: readout (0), [transpose (1), unflatten (2): done in forward], 1×1 conv (3), resample (4)."""
    layers = [ProjectReadout(dim), nn.Identity(), nn.Identity(), nn.Conv2d(dim, out, 1)]
    if resample is not None:
        layers.append(resample)
    return nn.Sequential(*layers)


#: (timm model names to try, hooks, ViT width, postprocess widths, resnet stem) per DPT backbone
DPT_SPECS = {
    "vitl16_384": dict(timm=("vit_large_patch16_384",), hooks=(5, 11, 17, 23), dim=1024,
                       widths=(256, 512, 1024, 1024), hybrid=False),
    "vitb_rn50_384": dict(timm=("vit_base_r50_s16_384", "vit_base_resnet50_384"), hooks=(0, 1, 8, 11), dim=768,
                          widths=(256, 512, 768, 768), hybrid=True),
}
#: a scaled-down build of the same topology, for tests (no published weights); the small img_size only
#: shortens timm's construction (the hybrid embed probes its ResNet at img_size) and the position grid
TINY = dict(embed_dim=32, depth=4, num_heads=2, img_size=64)


class DPTNet(nn.Module):
    """DPTDepthModel (MiDaS v3): timm ViT (``pretrained.model``) + reassemble + fusion decoder.

    ``tiny=True`` builds the same topology with a 4-block, 32-wide ViT and a 32-wide decoder, for tests.
    """

    def __init__(self, backbone: str, tiny: bool = False):
        super().__init__()
        spec = DPT_SPECS[backbone]
        timm = _timm()
        names = [n for n in spec["timm"] if timm.is_model(n)]
        if not names:
            raise ConfigError(f"this timm ({timm.__version__}) has none of {spec['timm']}; DPT needs one of them")
        kwargs = dict(TINY) if tiny else {}
        model = timm.create_model(names[0], pretrained=False, **kwargs)
        self.hybrid = spec["hybrid"]
        dim = model.embed_dim
        depth = len(model.blocks)
        if tiny:
            self.hooks = tuple(max(0, round((i + 1) * depth / 4) - 1) for i in range(4))
            widths = [256, 512, dim, dim] if self.hybrid else [16, 32, dim, dim]
            features = 32
        else:
            self.hooks, widths, features = spec["hooks"], list(spec["widths"]), 256
        self.pretrained = nn.Module()
        self.pretrained.model = model
        if self.hybrid:  # the first two levels are the ResNet's stage outputs, untouched (Identity ×3)
            self.pretrained.act_postprocess1 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
            self.pretrained.act_postprocess2 = nn.Sequential(nn.Identity(), nn.Identity(), nn.Identity())
        else:
            self.pretrained.act_postprocess1 = _postprocess(dim, widths[0], nn.ConvTranspose2d(widths[0], widths[0], 4, 4))
            self.pretrained.act_postprocess2 = _postprocess(dim, widths[1], nn.ConvTranspose2d(widths[1], widths[1], 2, 2))
        self.pretrained.act_postprocess3 = _postprocess(dim, widths[2], None)
        self.pretrained.act_postprocess4 = _postprocess(dim, widths[3], nn.Conv2d(widths[3], widths[3], 3, stride=2,
                                                                                    padding=1))
        self.scratch = _scratch(widths, [features] * 4, [features] * 4)
        self.scratch.output_conv = _head(features, 32, align_corners=True)

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        """The 24×24 position grid resized (bilinear) to the token grid, as MiDaS's ``_resize_pos_embed``."""
        pos = self.pretrained.model.pos_embed
        token, grid = pos[:, :1], pos[0, 1:]
        old = int(math.sqrt(grid.shape[0]))
        grid = grid.reshape(1, old, old, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        return torch.cat([token, grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four reassembled feature maps (strides 4, 8, 16, 32)."""
        vit = self.pretrained.model
        b, _, h, w = x.shape
        gh, gw = h // 16, w // 16
        levels: list[torch.Tensor] = []
        if self.hybrid:
            resnet = vit.patch_embed.backbone
            y = resnet.stem(x)
            for i, stage in enumerate(resnet.stages):
                y = stage(y)
                if i < 2:
                    levels.append(y)
            x = resnet.norm(y)
        tokens = vit.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([vit.cls_token.expand(b, -1, -1), tokens], dim=1) + self._pos_embed(gh, gw)
        tokens = vit.pos_drop(tokens)
        if hasattr(vit, "norm_pre"):
            tokens = vit.norm_pre(tokens)
        wanted = {hook: i for i, hook in enumerate(self.hooks)}
        taps: dict[int, torch.Tensor] = {}
        for i, block in enumerate(vit.blocks):
            tokens = block(tokens)
            if i in wanted:
                taps[wanted[i]] = tokens
            if i == self.hooks[3]:  # later blocks feed nothing (MiDaS ran them and discarded the result)
                break
        posts = [self.pretrained.act_postprocess1, self.pretrained.act_postprocess2,
                 self.pretrained.act_postprocess3, self.pretrained.act_postprocess4]
        for level in range(len(levels), 4):
            post = posts[level]
            feat = post[0](taps[level]).transpose(1, 2).reshape(b, -1, gh, gw)
            levels.append(post[3:](feat))
        return levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self.encode(x)
        s = self.scratch
        r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
        path = s.refinenet4(r4, size=r3.shape[2:])
        path = s.refinenet3(path, r3, size=r2.shape[2:])
        path = s.refinenet2(path, r2, size=r1.shape[2:])
        path = s.refinenet1(path, r1)
        return s.output_conv(path)


# -- registered components ----------------------------------------------------------------------

class MidasOptions(DepthOptions):
    weights: str = Field("default", description="'default' (the official MiDaS release file, via the weights "
                         "directory, cache or a checked download), 'random' (for tests), or a local state-dict file.")


class DPTOptions(MidasOptions):
    variant: Literal["full", "tiny"] = Field("full", description="'full': the published architecture; 'tiny': the "
                                             "same topology with a 4-block, 32-wide ViT, for fast tests (needs "
                                             "weights 'random' or a file saved from a tiny build).")


def _midas_resize(size: int, method: str, model_type: str) -> Resize:
    """MiDaS ``load_model``'s ``Resize(net_w, net_h, keep_aspect_ratio=True, ensure_multiple_of=32,
    resize_method, INTER_CUBIC)``; ``run.py`` resizes the prediction back with bicubic, align_corners=False."""
    return Resize(size, size, method, multiple=32, interpolation="bicubic", antialias=False,  # type: ignore[arg-type]
                  output_interpolation="bicubic", output_align_corners=False,
                  source=f"isl-org/MiDaS midas/model_loader.py ({model_type}), midas/transforms.py Resize, run.py")


class _MidasBase(DepthNetwork):
    output_kind = "inverse_depth"
    license = MIDAS_LICENSE
    size_multiple = 32
    mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN
    std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    def _weights_path(self) -> Path | None:
        """Resolved before the network is built, so a missing file fails fast."""
        if getattr(self.options, "variant", "full") == "tiny" and self.options.weights == "default":
            raise ConfigError(f"depth network {self.name!r}: variant 'tiny' has no published weights; "
                              "use weights: random or a file saved from a tiny build")
        return resolve_choice(self.weights_choice(), self.weights_file, component=self.name)

    def _finish(self, net: nn.Module, path: Path | None) -> None:
        self.net = net
        load_pretrained(self.net, path, component=self.name, what=f"MiDaS {self.name}", convert=_midas_state,
                        ignore=("*.num_batches_tracked",))
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.freeze()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self._mean) / self._std)


class MidasSmall(_MidasBase):
    """MiDaS v2.1 small (EfficientNet-Lite3 + RefineNet decoder), relative inverse depth, 256 px.

    Preprocessing as isl-org/MiDaS ``midas/model_loader.py`` (``midas_v21_small_256``) with ``Resize`` of
    ``midas/transforms.py``: keep the aspect ratio, both sides at most 256 ("upper_bound"), each a multiple
    of 32, bicubic; ImageNet mean/std on [0, 1]; the map back to the image size bicubic (``run.py``).
    sha256 of ``midas_v21_small_256.pt`` as pinned by LibreYOLO and matching the release's hash-prefixed
    name ``midas_v21_small-70d6b9c8.pt``.
    """

    name = "midas_small"
    Options = MidasOptions
    weights_file = MIDAS_SMALL_WEIGHTS
    transform = _midas_resize(256, "upper_bound", "midas_v21_small_256")
    default_input_size = 256  # resize 'pad'

    def __init__(self, options=None):
        super().__init__(options)
        path = self._weights_path()
        self._finish(MidasSmallNet(), path)


class _DPTBase(_MidasBase):
    Options = DPTOptions
    backbone: ClassVar[str] = ""
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    default_input_size = 384  # resize 'pad'

    def __init__(self, options=None):
        super().__init__(options)
        path = self._weights_path()
        self._finish(DPTNet(self.backbone, tiny=self.options.variant == "tiny"), path)


class DPTHybrid(_DPTBase):
    """MiDaS v3 DPT-Hybrid (ViT-B/16 on ResNet-50 stages), relative inverse depth, 384 px.

    Preprocessing as isl-org/MiDaS ``midas/model_loader.py`` (``dpt_hybrid_384``) with ``Resize`` of
    ``midas/transforms.py``: keep the aspect ratio, scale as little as possible towards 384 ("minimal"),
    each side a multiple of 32, bicubic; mean/std 0.5; the map back bicubic (``run.py``).
    No sha256 is pinned: none was found published for the v3 asset ``dpt_hybrid_384.pt``. (The DPT
    repository's release of the same model, ``dpt_hybrid-midas-501f0c75.pt``, has sha256
    501f0c75b3bca7daec6b3682c5054c09b366765aef6fa3a09d03a5cb4b230853 per Hugging Face LFS pointers; that it
    is byte-identical to the MiDaS asset is likely but unverified, so it is not pinned.)
    """

    name = "dpt_hybrid"
    weights_file = DPT_HYBRID_WEIGHTS
    transform = _midas_resize(384, "minimal", "dpt_hybrid_384")
    backbone = "vitb_rn50_384"


class DPTLarge(_DPTBase):
    """MiDaS v3 DPT-Large (ViT-L/16), relative inverse depth, 384 px (1.28 GiB of weights).

    Preprocessing as isl-org/MiDaS ``midas/model_loader.py`` (``dpt_large_384``) with ``Resize`` of
    ``midas/transforms.py``: keep the aspect ratio, "minimal" towards 384, multiples of 32, bicubic;
    mean/std 0.5; the map back bicubic (``run.py``). sha256 of ``dpt_large_384.pt`` as pinned by
    LibreYOLO, equal to the DPT release ``dpt_large-midas-2f21e586.pt``.
    """

    name = "dpt_large"
    weights_file = DPT_LARGE_WEIGHTS
    transform = _midas_resize(384, "minimal", "dpt_large_384")
    backbone = "vitl16_384"
