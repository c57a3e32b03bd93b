"""Published checkpoints load strictly: each network's state-dict layout written out from its authors' files.

The key names and shapes below are derived from the authors' code, not from stylekit's modules:
isl-org/MiDaS ``midas/midas_net_custom.py`` (MidasNet_small), ``midas/dpt_depth.py`` (DPTDepthModel),
``midas/blocks.py`` (``_make_encoder``, ``_make_scratch``, ``_make_efficientnet_backbone``,
``FeatureFusionBlock_custom``, ``ResidualConvUnit_custom``), ``midas/backbones/vit.py`` and
``midas/backbones/utils.py`` (``make_backbone_default``, ``_make_vit_b_rn50_backbone``, ``ProjectReadout``);
DepthAnything/Depth-Anything-V2 ``run.py`` and ``depth_anything_v2/dpt.py`` (DPTHead, vits config) for the
Hugging Face model ``depth-anything/Depth-Anything-V2-Small-hf``. The encoders' own parameter names come
from the libraries the authors' code instantiates (timm's ViTs, gen-efficientnet, whose names timm kept),
asked here the way the authors' code asks them. The hourglass port has its own file
(test_hourglass_port.py).
"""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch
from safetensors.torch import save_file

from stylekit.depth import MidasSmall
from stylekit.depth.midas import DPTNet
from stylekit.errors import WeightsMismatchError
from stylekit.weights import mismatch

Layout = dict[str, tuple[int, ...]]


def _timm_layout(name: str, **kwargs) -> Layout:
    import timm

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in timm.create_model(name, pretrained=False, **kwargs).state_dict().items()}


def _conv(prefix: str, cout: int, cin: int, k: int, bias: bool = True, transpose: bool = False) -> Layout:
    shape = (cin, cout, k, k) if transpose else (cout, cin, k, k)
    return {f"{prefix}.weight": shape, **({f"{prefix}.bias": (cout,)} if bias else {})}


def _fusion(prefix: str, features: int, expand: bool) -> Layout:
    """FeatureFusionBlock_custom (bn=False): out_conv 1×1 (to features//2 when expand), two ResidualConvUnit_custom."""
    out = _conv(f"{prefix}.out_conv", features // 2 if expand else features, features, 1)
    for unit in ("resConfUnit1", "resConfUnit2"):
        out |= _conv(f"{prefix}.{unit}.conv1", features, features, 3) | _conv(f"{prefix}.{unit}.conv2", features, features, 3)
    return out


def _scratch(in_shape: list[int], out_shape: list[int]) -> Layout:
    """_make_scratch: layerN_rn, 3×3 without bias."""
    out: Layout = {}
    for i, (cin, cout) in enumerate(zip(in_shape, out_shape), start=1):
        out |= _conv(f"scratch.layer{i}_rn", cout, cin, 3, bias=False)
    return out


def midas_small_layout() -> Layout:
    """MidasNet_small(features=64, backbone='efficientnet_lite3', blocks={'expand': True})."""
    effnet = _timm_layout("tf_efficientnet_lite3")  # gen-efficientnet's tf_efficientnet_lite3, same names
    # _make_efficientnet_backbone: layer1 = (conv_stem, bn1, act1, *blocks[0:2]); layer2 = blocks[2:3];
    # layer3 = blocks[3:5]; layer4 = blocks[5:9]
    places = {"conv_stem": "layer1.0", "bn1": "layer1.1", "blocks.0": "layer1.3", "blocks.1": "layer1.4",
              "blocks.2": "layer2.0", "blocks.3": "layer3.0", "blocks.4": "layer3.1",
              **{f"blocks.{5 + i}": f"layer4.{i}" for i in range(4)}}
    out: Layout = {}
    for key, shape in effnet.items():
        head = next((p for p in places if key.startswith(p + ".")), None)
        if head is not None:  # conv_head, bn2 and classifier are not part of MiDaS's encoder
            out[f"pretrained.{places[head]}{key[len(head):]}"] = shape
    out |= _scratch([32, 48, 136, 384], [64, 128, 256, 512])  # expand: features ×1, ×2, ×4, ×8
    for i, features in zip((1, 2, 3, 4), (64, 128, 256, 512)):
        out |= _fusion(f"scratch.refinenet{i}", features, expand=i != 1)  # refinenet1 without expand
    out |= _conv("scratch.output_conv.0", 32, 64, 3) | _conv("scratch.output_conv.2", 32, 32, 3)
    out |= _conv("scratch.output_conv.4", 1, 32, 1)
    return out


def dpt_layout(backbone: str) -> Layout:
    """DPTDepthModel(backbone, non_negative=True), readout 'project', features 256."""
    if backbone == "vitl16_384":
        vit, dim, feats, stages = "vit_large_patch16_384", 1024, [256, 512, 1024, 1024], range(4)
    else:  # vitb_rn50_384: the first two levels are the ResNet's stages (act_postprocess1/2 are Identity)
        vit, dim, feats, stages = "vit_base_resnet50_384", 768, [256, 512, 768, 768], range(2, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm maps the name MiDaS uses to vit_base_r50_s16_384
        out = {f"pretrained.model.{k}": v for k, v in _timm_layout(vit).items()}
    for s in stages:
        post = f"pretrained.act_postprocess{s + 1}"
        out |= {f"{post}.0.project.0.weight": (dim, 2 * dim), f"{post}.0.project.0.bias": (dim,)}
        out |= _conv(f"{post}.3", feats[s], dim, 1)
        if s < 2:
            out |= _conv(f"{post}.4", feats[s], feats[s], 4 // 2 ** s, transpose=True)
        elif s == 3:
            out |= _conv(f"{post}.4", feats[3], feats[3], 3)
    out |= _scratch(feats, [256] * 4)
    for i in range(1, 5):
        out |= _fusion(f"scratch.refinenet{i}", 256, expand=False)
    out |= _conv("scratch.output_conv.0", 128, 256, 3) | _conv("scratch.output_conv.2", 32, 128, 3)
    out |= _conv("scratch.output_conv.4", 1, 32, 1)
    return out


def _shapes(module) -> Layout:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _meta_state(layout: Layout) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in layout.items()}


def test_midas_small_layout_and_a_release_format_file_round_trip(tmp_path):
    layout = midas_small_layout()
    net = MidasSmall({"weights": "random"})
    ours = _shapes(net.net)
    assert {k: v for k, v in ours.items() if not k.endswith("num_batches_tracked")} == \
           {k: v for k, v in layout.items() if not k.endswith("num_batches_tracked")}
    torch.manual_seed(0)
    state = {k: torch.randn(shape) if len(shape) else torch.tensor(3) for k, shape in layout.items()}
    for wrapped in (False, True):  # MiDaS BaseModel.load also takes {'model': ..., 'optimizer': ...}
        path = tmp_path / f"midas_v21_small_256{'_train' if wrapped else ''}.pt"
        torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}} if wrapped else state, path)
        loaded = MidasSmall({"weights": str(path)}).net.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items())


@pytest.mark.parametrize("backbone", ["vitl16_384", "vitb_rn50_384"])
def test_dpt_layouts_equal_the_authors_and_load_strictly(backbone):
    """Built on the meta device: the full-size layouts are compared without allocating 1.3 GB."""
    layout = dpt_layout(backbone)
    with torch.device("meta"):
        net = DPTNet(backbone)
    assert _shapes(net) == layout
    assert mismatch(net, _meta_state(layout)) == ""


def test_a_checkpoint_of_another_network_gets_stylekits_error(tmp_path):
    path = tmp_path / "dpt_large_384.safetensors"
    save_file({k: torch.zeros(v) for k, v in dpt_layout("vitl16_384").items() if k.startswith("scratch.")}, str(path))
    with pytest.raises(WeightsMismatchError) as info:
        MidasSmall({"weights": str(path)})
    message = str(info.value)
    assert str(path) in message and "does not fit MiDaS midas_small" in message
    assert "pretrained.layer1.0.weight [32×3×3×3]" in message  # a missing key with the shape MiDaS small needs
    assert "scratch.layer1_rn.weight: file 256×256×3×3, expected 64×32×3×3" in message


HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="transformers not installed (optional extra stylekit[hf])")
def test_depth_anything_small_hf_layout(tmp_path):
    """Depth-Anything-V2-Small-hf: the authors' 'vits' config (run.py: features 64, out_channels
    [48, 96, 192, 384]; dpt.py: DPTHead) under transformers' names; a saved .safetensors round-trips."""
    from stylekit.depth import DepthAnythingV2

    net = DepthAnythingV2({"weights": "random"})
    shapes = _shapes(net.net)
    expected = {
        "backbone.embeddings.patch_embeddings.projection.weight": (384, 3, 14, 14),  # DINOv2 ViT-S/14
        "backbone.embeddings.position_embeddings": (1, 1370, 384),  # 37×37 + class token (518 / 14)
        "neck.reassemble_stage.layers.0.projection.weight": (48, 384, 1, 1),  # depth_head.projects.0
        "neck.reassemble_stage.layers.0.resize.weight": (48, 48, 4, 4),  # ConvTranspose2d, stride 4
        "neck.reassemble_stage.layers.1.resize.weight": (96, 96, 2, 2),
        "neck.reassemble_stage.layers.3.resize.weight": (384, 384, 3, 3),  # Conv2d, stride 2
        "neck.convs.0.weight": (64, 48, 3, 3),  # scratch.layer1_rn, no bias
        "neck.fusion_stage.layers.0.projection.weight": (64, 64, 1, 1),  # refinenet4.out_conv
        "head.conv1.weight": (32, 64, 3, 3),  # output_conv1: features → features // 2
        "head.conv2.weight": (32, 32, 3, 3),  # output_conv2[0]: → head_features_2 = 32
        "head.conv3.weight": (1, 32, 1, 1),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert sum(k.startswith("backbone.encoder.layer.") and k.endswith("norm1.weight") for k in shapes) == 12
    assert "neck.convs.0.bias" not in shapes
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.net.state_dict().items()}, str(path))
    again = DepthAnythingV2({"weights": str(path)})
    assert all(torch.equal(again.net.state_dict()[k], v) for k, v in net.net.state_dict().items())
