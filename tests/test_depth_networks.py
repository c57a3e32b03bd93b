"""Depth networks: build offline, any image size, frozen but differentiable, weights round-trip.

The hourglass port's pickled checkpoints: test_hourglass_port.py; the authors' checkpoint layouts:
test_depth_layouts.py; the authors' preprocessing: test_depth_preprocessing.py."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from PIL import Image
from torch import nn

from conftest import SHARED_WEIGHTS, needs_shared
from stylekit.depth import DepthAnythingV2, DPTHybrid, DPTLarge, HourglassDepth, MidasSmall, TorchScriptDepth
from stylekit.errors import ConfigError, StylekitError, WeightsNotFoundError

HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None  # optional extra: stylekit[hf]
needs_transformers = pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="transformers not installed "
                                        "(optional extra: pip install \"stylekit[hf]\")")

#: small builds and inputs so the file stays fast on a 2-core CPU (the 'tiny' variants keep the topology)
NETS = {
    "hourglass": (HourglassDepth, {"input_size": 32}),
    "midas_small": (MidasSmall, {"input_size": 64}),
    "dpt_hybrid": (DPTHybrid, {"variant": "tiny", "input_size": 64}),
    "dpt_large": (DPTLarge, {"variant": "tiny", "input_size": 64}),
    "depth_anything_v2": (DepthAnythingV2, {"variant": "tiny", "input_size": 56}),
}
PARAMS = [pytest.param(name, marks=needs_transformers) if name == "depth_anything_v2" else name for name in NETS]
_built: dict[str, nn.Module] = {}


def build(name: str, **extra):
    cls, options = NETS[name]
    torch.manual_seed(0)
    net = cls({**options, "weights": "random", **extra})
    head = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 1][-1]
    with torch.no_grad():  # a random non-negative (ReLU) head can be all zero, which would hide the gradients
        head.bias.fill_(1.0)
    return net


def cached(name: str):
    """One random build per network for the whole file (built inside a test, under the no-network guard)."""
    if name not in _built:
        _built[name] = build(name)
    return _built[name]


@pytest.mark.parametrize("name", PARAMS)
def test_any_size_frozen_and_differentiable(name):
    net = cached(name)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    for n, (h, w) in ((2, (64, 80)), (1, (96, 72))):
        torch.manual_seed(1)
        x = (torch.rand(n, 3, h, w) * 255).requires_grad_(True)
        out = net(x)["output"]
        assert out.shape == (n, 1, h, w)
        assert torch.isfinite(out).all()
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", PARAMS)
def test_saved_weights_reload_exactly(name, tmp_path):
    net = cached(name)
    path = tmp_path / f"{name}.pt"
    torch.save(net.net.state_dict(), path)
    cls, options = NETS[name]
    fresh = cls({**options, "weights": str(path)})
    x = torch.rand(1, 3, 64, 80) * 255
    with torch.no_grad():
        assert torch.equal(net(x)["output"], fresh(x)["output"])


def test_output_kinds_and_published_weights():
    assert HourglassDepth.output_kind == "depth"
    for cls in (MidasSmall, DPTHybrid, DPTLarge, DepthAnythingV2):
        assert cls.output_kind == "inverse_depth"
    assert MidasSmall.weights_file.url.startswith("https://github.com/isl-org/MiDaS/releases/download/v2_1/")
    assert DPTLarge.weights_file.url.endswith("/v3/dpt_large_384.pt")
    assert "relative-depth-using-pytorch" in HourglassDepth.weights_file.url


def test_offline_default_weights_fail_with_a_clear_message():
    with pytest.raises(WeightsNotFoundError, match="midas_v21_small_256.pt.*70d6b9c8"):
        MidasSmall({})
    with pytest.raises(WeightsNotFoundError, match="relative-depth-using-pytorch"):
        HourglassDepth({})
    with pytest.raises(ConfigError, match="tiny"):
        DPTLarge({"variant": "tiny"})


@needs_transformers
def test_depth_anything_loads_a_saved_model_folder(tmp_path, monkeypatch):
    """Offline use: a model folder (save_pretrained) as `weights`, or under the weights directory by name."""
    net = cached("depth_anything_v2")
    folder = tmp_path / "Depth-Anything-V2-Small-hf"
    net.net.save_pretrained(folder)
    x = torch.rand(1, 3, 64, 80) * 255
    with torch.no_grad():
        expected = net(x)["output"]
        assert torch.equal(DepthAnythingV2({"weights": str(folder), "input_size": 56})(x)["output"], expected)
        monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
        assert torch.equal(DepthAnythingV2({"input_size": 56})(x)["output"], expected)


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(StylekitError, match=r'pip install "stylekit\[hf\]"'):
        DepthAnythingV2({"weights": "random", "variant": "tiny"})


# -- the TorchScript backend and the CLI ----------------------------------------------------------

@needs_shared
def test_torchscript_backend_runs_the_shared_depth_model():
    net = TorchScriptDepth({"weights": str(SHARED_WEIGHTS / "nyu_depth_hedvgg.torchscript.pt"), "input_size": 64})
    x = (torch.rand(1, 3, 70, 90) * 255).requires_grad_(True)
    out = net(x)["output"]
    assert out.shape == (1, 1, 70, 90) and (out > 0).all()  # softplus head: positive inverse depth
    out.mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_plugins_command_lists_the_depth_networks():
    from typer.testing import CliRunner

    from stylekit.cli import app

    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("hourglass", "midas_small", "dpt_hybrid", "dpt_large", "depth_anything_v2", "torchscript"):
        assert name in result.output


def test_depth_never_writes_two_inputs_to_one_output(tmp_path):
    """`stylekit depth a/x.jpg b/x.png` writes x_jpg_depth.png and x_png_depth.png, not one x_depth.png twice."""
    from typer.testing import CliRunner

    from stylekit.cli import app
    from stylekit.testing import make_images

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    make_images(tmp_path / "a", 1)[0].rename(tmp_path / "a" / "x.jpg")
    Image.open(make_images(tmp_path / "src", 1, seed=3)[0]).save(tmp_path / "b" / "x.png")
    result = CliRunner().invoke(app, ["depth", str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.png"), "-o",
                                      str(tmp_path / "out"), "--plugin", "stylekit.testing", "--network",
                                      "tiny_depth"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "x_jpg_depth.png", "x_jpg_depth_color.png", "x_png_depth.png", "x_png_depth_color.png"]
