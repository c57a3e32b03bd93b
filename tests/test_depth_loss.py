"""The depth term (Liu et al. 2017 eq. 2), the edge term, and hed_depth_lite."""

import pytest
import torch
from safetensors.torch import save_file

from conftest import SHARED_WEIGHTS, needs_shared
from stylekit.features import Features, NetworkSpec, Perception, Tap
from stylekit.losses import DepthLoss, EdgeLoss, LossBatch
from stylekit.plugins import get_registry

RANDOM_LITE = {"weights": "random", "encoder_weights": "random"}


def depth_batch(term, out_map, content_map):
    key = term.network_spec().key
    return LossBatch(torch.zeros(len(out_map), 3, 4, 4), torch.zeros(len(out_map), 3, 4, 4),
                     Features({Tap("output", key): out_map}), Features({Tap("output", key): content_map}))


def test_depth_term_is_eq2_on_hand_made_maps():
    term = DepthLoss({"network": "hed_depth_lite"})
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    b = torch.tensor([[[[1.0, 0.0], [3.0, 8.0]]]])
    # ((2-0)² + (4-8)²) / (C·H·W = 4) = 5
    assert term(depth_batch(term, a, b)).tolist() == pytest.approx([5.0])
    assert term(depth_batch(term, a, a)).item() == 0.0
    assert term.weight == 5.0  # the paper's weight is the default


def test_scale_invariant_option_ignores_affine_changes_of_the_output():
    torch.manual_seed(0)
    term = DepthLoss({"scale_invariant": True})
    out, ref = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    base = term(depth_batch(term, out, ref))
    assert torch.allclose(term(depth_batch(term, 3.0 * out + 7.0, ref)), base, atol=1e-5)
    assert term(depth_batch(term, 2 * ref - 1, ref)).abs().max() < 1e-6
    with pytest.raises(ValueError, match="needs layer 'output'"):
        DepthLoss({"scale_invariant": True, "layer": "relu3_3"})


def test_gradients_reach_the_output_but_never_the_depth_network():
    term = DepthLoss({"network_options": RANDOM_LITE})
    perception = Perception(get_registry())
    net = perception.require(term.network_spec())
    x = torch.rand(1, 3, 32, 48) * 255
    y = (x + torch.randn_like(x) * 20).clamp(0, 255).requires_grad_(True)
    with torch.no_grad():
        content = perception.extract(x, term.taps())
    value = term(LossBatch(y, x, perception.extract(y, term.taps()), content))
    value.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_depth_and_backbone_networks_are_shared_by_spec():
    edge = EdgeLoss({"network_options": {"weights": "random"}})
    perception = Perception(get_registry())
    backbone = perception.require(NetworkSpec.of("backbone", "hed_vgg16", {"weights": "random"}), alias="backbone")
    assert perception.require(edge.network_spec()) is backbone


def test_edge_term_is_zero_for_identical_images_and_positive_otherwise():
    edge = EdgeLoss({"network_options": {"weights": "random"}})
    perception = Perception(get_registry())
    perception.require(edge.network_spec())
    x = torch.rand(2, 3, 32, 32) * 255
    feats = perception.extract(x, edge.taps())
    assert edge(LossBatch(x, x, feats, feats)).abs().max() == 0
    other = perception.extract(x.flip(-1), edge.taps())
    assert (edge(LossBatch(x, x, other, feats)) > 0).all()


@pytest.mark.parametrize("size", [(48, 64), (37, 53)])
def test_hed_depth_lite_any_size_and_saved_state(tmp_path, size):
    net = get_registry().get("depth", "hed_depth_lite")(RANDOM_LITE)
    x = torch.rand(2, 3, *size) * 255
    out = net.predict(x)
    assert out.shape == (2, 1, *size) and torch.isfinite(out).all() and (out > 0).all()
    save_file(net.head.state_dict(), str(tmp_path / "head.safetensors"))
    again = get_registry().get("depth", "hed_depth_lite")({**RANDOM_LITE, "weights": str(tmp_path / "head.safetensors")})
    again.encoder.load_state_dict(net.encoder.state_dict())
    assert torch.equal(again.predict(x), out)


def test_a_depth_term_whose_network_options_name_a_file_gets_its_network(tmp_path):
    """The spec's key then holds a '.', which torch module names may not: the Perception holds the network anyway."""
    net = get_registry().get("depth", "hed_depth_lite")(RANDOM_LITE)
    save_file(net.head.state_dict(), str(tmp_path / "head.safetensors"))
    term = DepthLoss({"network": "hed_depth_lite", "network_options": {**RANDOM_LITE, "weights": str(tmp_path / "head.safetensors")}})
    perception = Perception(get_registry())
    built = perception.require(term.network_spec())
    assert perception.network(term.network_spec().key) is built
    x = torch.rand(1, 3, 32, 32) * 255
    feats = perception.extract(x, term.taps())
    assert term(LossBatch(x, x, feats, feats)).abs().max() == 0


def test_packaged_hed_depth_lite_weights_load(monkeypatch):
    net = get_registry().get("depth", "hed_depth_lite")({"encoder_weights": "random"})
    assert net.head.tap_scale.min() > 0 and not torch.equal(net.head.tap_scale, torch.ones(3))


@needs_shared
def test_torchscript_backend_runs_the_shared_model():
    net = get_registry().get("depth", "torchscript")(
        {"weights": str(SHARED_WEIGHTS / "nyu_depth_hedvgg.torchscript.pt")})
    out = net.predict(torch.rand(1, 3, 50, 70) * 255)
    assert out.shape == (1, 1, 50, 70) and (out > 0).all()


def test_depth_command_writes_16bit_maps_and_previews(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from stylekit.cli import app
    from stylekit.testing import make_images

    make_images(tmp_path / "in", 2, size=(40, 30))
    result = CliRunner().invoke(app, ["depth", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                      "--option", "weights=random", "--option", "encoder_weights=random"])
    assert result.exit_code == 0, result.output
    png16 = Image.open(tmp_path / "out" / "img_000_depth.png")
    assert png16.mode in ("I;16", "I") and png16.size == (40, 30)
    assert Image.open(tmp_path / "out" / "img_001_depth_color.png").mode == "RGB"
