"""Model cards: every checkpoint records its style (name, sha256, license), recipe, steps, wall time, versions and
final metrics; stylekit.load exposes it; export copies it into ONNX metadata_props / TorchScript and MODEL_CARD.md."""

import hashlib
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

import stylekit
from stylekit.card import build_card, card_markdown, style_entries
from stylekit.checkpoint import read_card, save_checkpoint
from stylekit.cli import app
from stylekit.config import apply_overrides, validate_recipe
from stylekit.errors import ConfigError
from stylekit.models.transformer import TransformerNet
from stylekit.runs import RunDir, changes_model
from stylekit.testing import tiny_recipe
from stylekit.trainer import Trainer

LICENSE, ATTRIBUTION = "CC BY 4.0", "A. Painter, Blue Study (2020)"


def test_every_checkpoint_carries_the_card(tmp_path):
    raw = tiny_recipe(tmp_path, style={"license": LICENSE, "attribution": ATTRIBUTION})
    Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False).fit()
    run = RunDir(tmp_path / "run")
    rows = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    cards = {}
    for ckpt in run.checkpoint_dirs():
        card = json.loads((ckpt / "meta.json").read_text())["card"]
        with safe_open(str(ckpt / "model.safetensors"), framework="pt") as fh:
            assert json.loads(fh.metadata()["model_card"]) == card  # the model file alone carries it
        cards[card["training"]["steps"]] = card
    assert sorted(cards) == [3, 6]
    card = cards[6]
    style_sha = hashlib.sha256((tmp_path / "style.jpg").read_bytes()).hexdigest()
    assert card["style"] == [{"name": "style.jpg", "sha256": style_sha, "license": LICENSE, "attribution": ATTRIBUTION}]
    assert card["name"] == "run" and card["recipe_name"] == "tiny" and card["recipe"]["losses"]["style"]["weight"] == 1e3
    assert card["training"]["iterations"] == 6 and card["training"]["wall_time_s"] > 0
    assert card["final_metrics"] == {"step": 6, "loss": rows[-1]["loss"], "terms": rows[-1]["terms"]}
    assert cards[3]["final_metrics"]["step"] == 2  # the last logged values before that checkpoint
    assert card["versions"]["torch"] == torch.__version__ and card["versions"]["stylekit"] == stylekit.__version__

    assert stylekit.load(run.path).card == card  # the Python API exposes it
    alone = tmp_path / "elsewhere" / "model.safetensors"
    alone.parent.mkdir()
    shutil.copy(run.latest_checkpoint() / "model.safetensors", alone)
    assert stylekit.load(alone).card == card


def card_checkpoint(tmp_path, card=None):
    torch.manual_seed(0)
    style = tmp_path / "wave.jpg"
    style.write_bytes(b"not really a jpeg, but hashed all the same")
    recipe = validate_recipe(tiny_recipe(tmp_path, style={"images": [str(style)], "license": "public domain",
                                                          "attribution": "Hokusai"})).model_dump(mode="json")
    card = card if card is not None else build_card(
        recipe, name="wave-run", step=400, wall_time_s=75.0,
        metrics={"step": 400, "time": 75.0, "loss": 3.5, "lr": 1e-3,
                 "terms": {"style": {"raw": 0.002, "weighted": 2.0}, "content": {"raw": 1.5, "weighted": 1.5}}},
        style=style_entries([str(style)], "public domain", "Hokusai"), versions={"stylekit": "0.1.0", "torch": "2"})
    net = TransformerNet({"channels": 8, "residual_blocks": 1})
    return save_checkpoint(tmp_path / "runs" / "wave-run", 400, net, {}, {"card": card} if card else {}), card


def test_onnx_export_carries_the_card_and_writes_model_card_md(tmp_path):
    pytest.importorskip("onnxruntime")
    from stylekit.export import read_onnx_card

    ckpt, card = card_checkpoint(tmp_path)
    out = tmp_path / "dist" / "wave.onnx"
    result = CliRunner().invoke(app, ["export", str(ckpt.parent.parent), "--format", "onnx", "-o", str(out),
                                      "--verify-size", "32"])
    assert result.exit_code == 0, result.output
    assert read_onnx_card(out) == card
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["style"] == "wave.jpg" and props["style_license"] == "public domain" and props["steps"] == "400"
    text = (tmp_path / "dist" / "MODEL_CARD.md").read_text()
    sha = hashlib.sha256((tmp_path / "wave.jpg").read_bytes()).hexdigest()
    for fact in ("# wave-run", f"| wave.jpg | `{sha}` | public domain | Hokusai |", "| steps | 400 of 6 |",
                 "1 min 15 s", "| style | 0.002 | 2 |", "input `image`", "'wave.onnx'", "stylekit 0.1.0"):
        assert fact in text, fact


def test_torchscript_export_carries_the_card(tmp_path):
    ckpt, card = card_checkpoint(tmp_path)
    out = tmp_path / "wave.pt"
    result = CliRunner().invoke(app, ["export", str(ckpt), "--format", "torchscript", "-o", str(out)])
    assert result.exit_code == 0, result.output
    extra = {"model_card.json": "", "MODEL_CARD.md": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["model_card.json"]) == card
    assert extra["MODEL_CARD.md"].decode() == (tmp_path / "MODEL_CARD.md").read_text()
    assert "torch.jit.load('wave.pt')" in extra["MODEL_CARD.md"].decode()


def test_checkpoints_from_before_cards_export_with_a_card_that_says_so(tmp_path):
    ckpt, _ = card_checkpoint(tmp_path, card={})
    assert read_card(ckpt / "model.safetensors") == {} and stylekit.load(ckpt).card == {}
    result = CliRunner().invoke(app, ["export", str(ckpt), "--format", "torchscript", "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert "none recorded" in " ".join(result.output.split())
    assert "written before stylekit recorded model cards" in (tmp_path / "MODEL_CARD.md").read_text()


def test_a_card_without_a_license_says_to_check_the_terms(tmp_path):
    card = build_card({"name": "x"}, name="x", step=1, wall_time_s=1, metrics={}, versions={},
                      style=style_entries([str(tmp_path / "missing.jpg")]))
    assert card["style"] == [{"name": "missing.jpg", "sha256": None}]
    text = card_markdown(card)
    assert "not given" in text and "check its terms before distributing" in text


def test_cards_and_recipes_with_the_old_licence_spelling_still_read(tmp_path):
    """Checkpoints written before the spelling became `license` (card format 1) and recipes that still say
    `style.licence` keep working: the card reads as `license`, the recipe key is taken with a FutureWarning."""
    (tmp_path / "new").mkdir()
    _, card = card_checkpoint(tmp_path / "new")
    old = json.loads(json.dumps(card).replace('"license"', '"licence"')) | {"format": 1}
    ckpt, _ = card_checkpoint(tmp_path, card={})  # no card in the model file: read_card takes meta.json's
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps(meta | {"card": old}))
    read = read_card(ckpt / "model.safetensors")
    assert read["style"][0]["license"] == "public domain" and "licence" not in read["style"][0]
    assert read["recipe"]["style"]["license"] == "public domain"
    assert "| public domain | Hokusai |" in card_markdown(old)

    with pytest.warns(FutureWarning, match=r"style\.licence is now spelled style\.license"):
        recipe = validate_recipe(tiny_recipe(tmp_path, style={"licence": "CC0"}))
    assert recipe.style.license == "CC0"
    with pytest.raises(ConfigError, match="give style.license only"):
        validate_recipe(tiny_recipe(tmp_path, style={"licence": "CC0", "license": "CC0"}))
    with pytest.warns(FutureWarning, match=r"--set: the key style\.licence"):
        raw = apply_overrides(tiny_recipe(tmp_path, style={"license": "CC0"}), ["style.licence=CC BY 4.0"])
    assert validate_recipe(raw).style.license == "CC BY 4.0"
    run = RunDir(tmp_path / "old-run")
    run.path.mkdir()
    run.config.write_text("style:\n  images: [a.jpg]\n  licence: CC0\n")
    assert run.read_config()["style"] == {"images": ["a.jpg"], "license": "CC0"}  # an old run folder, silently
    assert not changes_model("style.licence")  # like style.license, left out of run names
