"""`stylekit evaluate`: metrics with known answers, the report end to end, the missing-weights path."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stylekit.evaluate import EvalNetworks, EvalSettings, run_evaluation
from stylekit.evaluate import functional as Fm
from stylekit.evaluate.builtin_metrics import (LPIPS, ContentDistance, DepthPreservation, EdgePreservation, LPIPSNetwork,
                                       SaliencyPreservation, SSIM, all_columns, metrics_markdown)
from stylekit.evaluate.runner import compare
from stylekit.features import NetworkSpec
from stylekit.metrics import MetricContext, MetricUnavailable
from stylekit.plugins import get_registry

from conftest import SHARED_DATA, SHARED_WEIGHTS, needs_shared


def scene(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """A structured RGB image (gradient + rectangles) in [0, 255], 1×3×H×W."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([xx, yy, (xx + yy) / 2]) * 200
    for _ in range(4):
        y0, x0 = int(torch.randint(0, h - 12, (1,), generator=g)), int(torch.randint(0, w - 12, (1,), generator=g))
        img[:, y0:y0 + 12, x0:x0 + 16] = torch.rand(3, 1, 1, generator=g) * 255
    return img[None]


def shuffled(img: torch.Tensor, seed: int = 1) -> torch.Tensor:
    n, c, h, w = img.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return img.reshape(n, c, h * w)[..., perm].reshape(n, c, h, w)


class LumaDepth(nn.Module):
    """A 'depth network' with a known answer: inverse depth = blurred luma (TorchScript-able)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        return torch.nn.functional.avg_pool2d(y, 5, stride=1, padding=2, count_include_pad=False) + 0.1


@pytest.fixture(scope="module")
def depth_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("depth") / "luma_depth.pt"
    torch.jit.script(LumaDepth()).save(str(path))
    return path


@pytest.fixture(scope="module")
def shared_networks(depth_file) -> EvalNetworks:
    """Built once per module: random VGGs are slow to initialize on 2 cores."""
    registry = get_registry()
    return EvalNetworks(registry, depth=NetworkSpec.of("depth", "torchscript", {"weights": str(depth_file),
                                                                                "input_size": None}),
                        hed=NetworkSpec.of("backbone", "hed_vgg16", {"weights": "random"}),
                        backbone=NetworkSpec.of("backbone", "hed_vgg16", {"weights": "random"}))


@pytest.fixture
def networks(shared_networks, monkeypatch) -> EvalNetworks:
    shared_networks.clear()
    return shared_networks


def prepared(metric_cls, networks, options=None):
    """A metric as `stylekit evaluate` builds it: options, then the evaluation's networks."""
    metric = metric_cls(options)
    metric.prepare(MetricContext(networks=networks))
    return metric


# -- functional pieces ------------------------------------------------------------------------------------------
def test_depth_rmse_ignores_scale_and_shift():
    target = torch.rand(2, 1, 10, 12, dtype=torch.float64)
    assert float(Fm.depth_rmse(target, target * 7 + 2).max()) < 1e-6


def test_depth_metrics_identity_and_shuffle():
    d = Fm.spectral_residual_saliency(scene())  # any smooth map
    assert float(Fm.depth_rmse(d, d)) == pytest.approx(0, abs=1e-6)
    assert float(Fm.ordinal_agreement(d, d)) == 1.0
    assert float(Fm.ordinal_agreement(d, -d)) == 0.0  # reversed order
    assert float(Fm.ordinal_agreement(d, 3 * d + 1)) == 1.0  # order ignores scale and shift
    s = shuffled(d)
    assert float(Fm.depth_rmse(d, s)) > 0.1
    assert abs(float(Fm.ordinal_agreement(d, s)) - 0.5) < 0.1


def test_edge_prf_hand_computed():
    truth = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    truth[0, 0, 5, 0:10] = True  # a horizontal line: 10 pixels
    pred = torch.zeros_like(truth)
    pred[0, 0, 6, 0:4] = True  # 4 pixels, 1 px off the line: matched with radius 1
    pred[0, 0, 0, 0:2] = True  # 2 pixels far away: unmatched
    out = Fm.edge_prf(pred, truth, radius=1)
    # P = 4/6; R: truth pixels within 1 px (Chebyshev) of a pred pixel: columns 0..4 → 5/10
    assert float(out["precision"]) == pytest.approx(4 / 6)
    assert float(out["recall"]) == pytest.approx(5 / 10)
    p, r = 4 / 6, 0.5
    assert float(out["f"]) == pytest.approx(2 * p * r / (p + r))
    assert float(Fm.spurious_ratio(pred, truth, radius=1)) == pytest.approx(2 / 6)
    # with no tolerance the off-by-one pixels miss
    assert float(Fm.edge_prf(pred, truth, radius=0)["precision"]) == 0.0
    same = Fm.edge_prf(truth, truth, 1)
    assert float(same["f"]) == 1.0
    empty = torch.zeros_like(truth)
    assert float(Fm.edge_prf(empty, empty, 1)["f"]) == 1.0
    assert float(Fm.edge_prf(empty, truth, 1)["f"]) == 0.0


def test_tolerance_radius_follows_bsds():
    assert Fm.tolerance_radius(321, 481) == round(0.0075 * math.hypot(321, 481)) == 4
    assert Fm.tolerance_radius(10, 10) == 1


def test_saliency_ssim_and_bootstrap():
    img = scene()
    sal = Fm.spectral_residual_saliency(img)
    assert sal.shape == (1, 1, 48, 64) and 0 <= float(sal.min()) and float(sal.max()) <= 1
    assert float(Fm.pearson(sal, sal)) == pytest.approx(1.0)
    assert float(Fm.ssim_luminance(img, img)) == pytest.approx(1.0)
    assert float(Fm.ssim_luminance(img, shuffled(img))) < 0.3
    lo, hi = Fm.bootstrap_mean_ci(np.arange(20.0), 500, seed=0)
    assert lo < 9.5 < hi and (lo, hi) == Fm.bootstrap_mean_ci(np.arange(20.0), 500, seed=0)
    assert Fm.bootstrap_mean_ci(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)


# -- metric classes ---------------------------------------------------------------------------------------------
def test_metric_classes_perfect_on_identity_and_poor_on_shuffle(networks):
    img = scene()
    bad = shuffled(img)
    depth, edges = prepared(DepthPreservation, networks), prepared(EdgePreservation, networks)
    same = {**depth.compute(img, img), **edges.compute(img, img),
            **SaliencyPreservation().compute(img, img), **SSIM().compute(img, img),
            **prepared(ContentDistance, networks).compute(img, img)}
    assert same["depth_rmse"].item() == pytest.approx(0, abs=1e-5)
    assert same["depth_ordinal"].item() == 1.0
    assert same["edge_f"].item() == 1.0 and same["edge_spurious"].item() == 0.0
    assert same["saliency_cc"].item() == pytest.approx(1.0) and same["saliency_mae"].item() == pytest.approx(0)
    assert same["ssim"].item() == pytest.approx(1.0)
    assert same["content_loss"].item() == 0.0
    # the plugin shape: __call__ returns the headline column per image
    assert depth(img, bad).shape == (1,)
    worse = depth.compute(img, bad)
    assert worse["depth_rmse"].item() > 0.1 and worse["depth_ordinal"].item() < 0.7


def test_edge_metrics_drop_on_shuffle(networks, monkeypatch):
    # A fixed 'HED' for a known answer: edges where the luma gradient is large.
    img = scene()

    def edges(x):
        y = Fm.luminance(x)
        gx = (y[..., :, 1:] - y[..., :, :-1]).abs()
        gy = (y[..., 1:, :] - y[..., :-1, :]).abs()
        g = torch.nn.functional.pad(gx, (0, 1, 0, 0)) + torch.nn.functional.pad(gy, (0, 0, 0, 1))
        return (g > 20).float()

    monkeypatch.setattr(networks, "edges", edges)
    metric = prepared(EdgePreservation, networks)
    assert metric.compute(img, img)["edge_f"].item() == 1.0
    bad = metric.compute(img, shuffled(img))
    assert bad["edge_f"].item() < 0.5 and bad["edge_spurious"].item() > 0.3


def test_lpips_network_identity_and_missing_weights(networks):
    torch.manual_seed(0)
    net = LPIPSNetwork()  # random weights: the structure, not the numbers
    for lin in net.lins:  # LPIPS's learned weights are non-negative, so the distance is
        lin.weight.data.abs_()
    img = scene(32, 32)
    assert float(net(img, img)) == 0.0 and float(net(img, shuffled(img))) > 0
    with pytest.raises(MetricUnavailable, match=r"missing: (vgg\.pth|vgg16-397923af\.pth)"):
        prepared(LPIPS, networks)


def test_docs_cover_every_column():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    for column in all_columns():
        assert f"`{column.key}`" in doc, column.key
    assert "| metric |" in metrics_markdown()


# -- end to end ---------------------------------------------------------------------------------------------------
def _tiny_checkpoint(path: Path, seed: int) -> Path:
    from stylekit.checkpoint import save_model
    from stylekit.models.transformer import TransformerNet

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(TransformerNet(), path)
    return path


def test_report_end_to_end(tmp_path, depth_file, monkeypatch):
    from stylekit.data import load_image, to_image
    from stylekit.testing import make_images

    content = tmp_path / "content"
    make_images(content, count=3, size=(40, 32))
    base = _tiny_checkpoint(tmp_path / "base" / "model.safetensors", 0)
    cand = _tiny_checkpoint(tmp_path / "cand" / "model.safetensors", 1)
    ref = tmp_path / "reference"
    ref.mkdir()
    for p in sorted(content.glob("*.jpg"))[:2]:  # a reference for two of the three images, at another size
        bigger = torch.nn.functional.interpolate(load_image(p), scale_factor=1.5)
        to_image(bigger[0]).save(ref / f"{p.stem}_ref.png")
    (content / "broken.jpg").write_bytes(b"not a jpeg")
    style = tmp_path / "style.png"
    to_image(scene(40, 40)[0]).save(style)
    out = tmp_path / "eval"
    messages: list[str] = []
    monkeypatch.chdir(tmp_path)  # models given relative to the working folder, as users type them
    result = run_evaluation([base.relative_to(tmp_path), cand.relative_to(tmp_path)], content, out, reference_dirs=[ref], reference_pattern="{stem}_ref",
                            style=style,
                            depth_options={"weights": str(depth_file), "input_size": None},
                            backbone_options={"weights": "random"}, hed_options={"weights": "random"},
                            compare_models=True, style_size=32, settings=EvalSettings(bootstrap=200), warn=messages.append)
    files = result.files
    for key in ("json", "csv", "markdown", "html", "figure", "bars"):
        assert files[key].is_file(), key
    data = json.loads(files["json"].read_text())
    assert data["sources"] == ["base", "cand", "reference:reference"]
    assert data["inputs"]["models"] == [str(base), str(cand)]  # absolute: `export --evaluation` finds them anywhere
    assert len(data["images"]) == 3
    assert any("broken" in s for s in data["skipped"])  # corrupt content image reported, not fatal
    assert any("reference" in s for s in data["skipped"])  # the missing reference image too
    assert data["unavailable"]["lpips"].startswith("not available (missing: ")
    assert data["unavailable"]["artfid"].startswith("not available (missing: ")
    assert "bsds" in data["unavailable"]
    for key in ("depth_rmse", "depth_ordinal", "edge_f", "saliency_cc", "ssim", "content_loss", "style_loss_mean", "style_loss_sum",
                "style_loss_normalized"):
        assert data["summary"]["base"][key]["n"] == 3, key
        assert data["summary"]["reference:reference"][key]["n"] == 2, key
    rows = {r["metric"]: r for r in data["comparison"]["rows"]}
    assert rows["ssim"]["n"] == 3 and rows["ssim"]["ci_low"] <= rows["ssim"]["diff"] <= rows["ssim"]["ci_high"]
    with open(files["csv"]) as fh:
        table = list(csv.DictReader(fh))
    assert sum(r["row"] == "image" for r in table) == 8 and sum(r["row"] == "mean" for r in table) == 3
    assert table[0]["lpips"].startswith("not available (missing: ")
    md = files["markdown"].read_text()
    assert "comparison.png" in md and "Comparison: cand − base" in md and "not available (missing:" in md
    assert "<table>" in files["html"].read_text()


def test_cli_errors_without_depth_network(tmp_path):
    from typer.testing import CliRunner

    from stylekit.cli import app
    from stylekit.testing import make_images

    make_images(tmp_path / "content", count=1)
    ckpt = _tiny_checkpoint(tmp_path / "m" / "model.safetensors", 0)
    result = CliRunner().invoke(app, ["evaluate", str(ckpt), "--content", str(tmp_path / "content"),
                                      "--depth-network", "no_such_net", "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "no_such_net" in result.output and "torchscript" in result.output  # lists the registered depth networks


@needs_shared
def test_bsds_ground_truth_with_real_hed(tmp_path):
    """Real HED on one BSDS500 test image: the content's own edges agree with the human boundaries."""
    from stylekit.data import load_image
    from stylekit.evaluate.builtin_metrics import BoundaryAgreement, load_bsds_boundaries

    stem = "100007"
    img = load_image(SHARED_DATA / "eval/bsds500/images/test" / f"{stem}.jpg")
    gt = load_bsds_boundaries(SHARED_DATA / "eval/bsds500/groundTruth/test" / f"{stem}.mat")
    nets = EvalNetworks(get_registry(), hed=NetworkSpec.of("backbone", "hed_vgg16",
                                                          {"weights": str(SHARED_WEIGHTS / "hed_bsds500.weights.h5")}))
    metric = prepared(BoundaryAgreement, nets)
    real = metric.compute(img, img, boundaries=gt[None])
    noise = metric.compute(img, shuffled(img), boundaries=gt[None])
    assert real["bsds_f"].item() > 0.4
    assert real["bsds_f"].item() > noise["bsds_f"].item() + 0.2


def test_lpips_names_exactly_the_missing_backbone(tmp_path, monkeypatch, networks):
    """With the LPIPS linear layers present (as the lpips wheel ships them), only the VGG-16 file is missing."""
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPSNetwork.CHANNELS)},
               tmp_path / "vgg.pth")
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MetricUnavailable) as info:
        prepared(LPIPS, networks)
    assert str(info.value) == "missing: vgg16-397923af.pth"


def test_evaluation_gets_its_networks_from_the_training_cache():
    """EvalNetworks builds through a Perception: one instance per spec across roles, and a run's own is reused."""
    from stylekit.features import Tap
    from stylekit.testing import make_perception, tiny_registry

    spec = NetworkSpec.of("backbone", "tiny_vgg")
    perception = make_perception()  # as the trainer builds it: tiny_vgg under the alias "backbone"
    nets = EvalNetworks(perception=perception, backbone=spec, hed=spec)
    assert nets.get("backbone") is perception.network("backbone")
    assert nets.get("hed") is nets.get("backbone")
    assert len(perception.nets) == 1
    x = torch.rand(1, 3, 16, 16) * 255
    torch.testing.assert_close(nets.features(x, ("relu2_2",))["relu2_2"],
                               perception.extract(x, [Tap("relu2_2")])[Tap("relu2_2")])
    own = EvalNetworks(tiny_registry(), backbone=spec, hed=spec)  # without a run: built once, lazily
    assert own.perception.nets.keys() == set()
    assert own.get("hed") is own.get("backbone") is own.perception.require(spec)


def test_shrinking_bsds_boundaries_keeps_thin_lines():
    from stylekit.evaluate.runner import resize_boundaries

    b = torch.zeros(321, 481, dtype=torch.bool)
    b[100, :] = True  # one-pixel line: nearest-neighbor shrinking would drop it in places
    small = resize_boundaries(b, (214, 320))
    assert small.shape == (214, 320) and bool(small.any(0).all())


def test_evaluation_for_logs_says_how_far_it_is_at_each_tenth():
    """--no-progress (a background evaluation): one plain line per tenth of the work, not one per image."""
    from rich.console import Console

    from stylekit.evaluate.console import progress_bar

    console = Console(record=True, width=100)
    with progress_bar(console, enabled=False) as update:
        for done in range(1, 4361):
            update("00001", done, 4360)
    lines = console.export_text().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("evaluated 436/4360 (10 %") and lines[-1].startswith("evaluated 4360/4360 (100 %")
