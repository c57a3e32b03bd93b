"""Multi-style networks end to end: a recipe with N style images trains one network for N styles (each image
learns against its own style's Gram matrices), resumes bit-for-bit, adds a style by training only its γ/β, and
is used by name or blend from the command line, Python, the exporters and ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import stylekit
from stylekit import session
from stylekit.card import card_markdown
from stylekit.checkpoint import load_model, read_card, save_model
from stylekit.config import deep_merge
from stylekit.cli import app
from stylekit.errors import ConfigError
from stylekit.losses.base import LossBatch, TermContext
from stylekit.losses.style import StyleLoss
from stylekit.models import ConditionalNet
from stylekit.multistyle import style_labels
from stylekit.runs.folder import RunDir
from stylekit.testing import make_images, make_perception, random_images, tiny_recipe

CIN = {"name": "cin", "channels": 4, "residual_blocks": 1}


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, *words):
    """Exit 2, one ``error:`` paragraph naming ``words``, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
    flat = " ".join(result.output.split())
    for word in words:
        assert word in flat, f"{word!r} not in {flat}"


@pytest.fixture
def styles(tmp_path):
    files = make_images(tmp_path / "styles", 3, (40, 40), seed=5)
    return [f.rename(f.with_name(name + ".jpg")) for f, name in zip(files, ("wave", "udnie", "scream"))]


def multi_recipe(tmp_path, styles, **overrides):
    raw = tiny_recipe(tmp_path, style={"images": [str(p) for p in styles], "license": "public domain",
                                       "attribution": ["Hokusai", "Picabia", "Munch", "Picasso"][:len(styles)]})
    raw["model"] = CIN
    return deep_merge(raw, overrides)


def test_style_term_matches_each_image_against_its_own_style():
    """Several style images are one style (their mean Gram) for a single-style network, and one style each for
    a multi-style one: the term on image i equals the single-style term of image i's style."""
    perception = make_perception()
    images = [random_images(1, (36, 36), seed=s) for s in (11, 12, 13)]
    options = {"layers": ["relu1_2", "relu2_2"]}

    def term(style_images, per_style):
        loss = StyleLoss(options)
        loss.prepare(TermContext(perception, style_images, torch.device("cpu"), per_style=per_style))
        with torch.no_grad():
            loss.set_style([perception.extract(i, loss.style_taps()) for i in style_images])
        return loss

    multi = term(images, per_style=True)
    assert multi.targets["relu1_2"].shape[0] == 3 and term(images, False).targets["relu1_2"].shape[0] == 1
    output = random_images(3, (32, 32), seed=2)
    batch = LossBatch(output, output, perception.extract(output, multi.output_taps()), {},
                      style=torch.tensor([2, 0, 2]))
    expected = torch.stack([term([images[s]], False)(LossBatch(output[i:i + 1], output[i:i + 1],
                                                              perception.extract(output[i:i + 1], multi.output_taps()),
                                                              {}))[0] for i, s in enumerate([2, 0, 2])])
    torch.testing.assert_close(multi(batch), expected)


def test_styles_are_drawn_per_element_or_per_batch_the_same_on_every_run():
    drawn = [style_labels(0, step, 4, [0, 1, 2]) for step in range(50)]
    assert all(torch.equal(a, b) for a, b in zip(drawn, [style_labels(0, s, 4, [0, 1, 2]) for s in range(50)]))
    assert set(torch.cat(drawn).tolist()) == {0, 1, 2}
    assert any(len(set(d.tolist())) > 1 for d in drawn)  # per element
    assert all(len(set(style_labels(0, s, 4, [0, 1, 2], per_batch=True).tolist())) == 1 for s in range(50))
    assert set(torch.cat([style_labels(1, s, 2, [3]) for s in range(9)]).tolist()) == {3}  # only those given
    whole = style_labels(7, 3, 2, [0, 1, 2], world=2)
    parts = [style_labels(7, 3, 2, [0, 1, 2], rank=r, world=2) for r in (0, 1)]
    assert torch.equal(whole, parts[0]) and len(parts[1]) == 2  # ranks split one global draw


def test_a_multi_style_run_trains_resumes_bit_for_bit_and_says_so_in_its_card(tmp_path, styles):
    run = session.start_run(multi_recipe(tmp_path, styles), show_progress=False)
    model = load_model(run.path)
    assert type(model) is ConditionalNet and model.styles == ["wave", "udnie", "scream"]
    config = yaml.safe_load((run.path / "config.yaml").read_text())
    assert config["model"]["styles"] == ["wave", "udnie", "scream"] and config["model"]["name"] == "cin"
    untrained = ConditionalNet({**{k: v for k, v in CIN.items() if k != "name"}, "styles": model.styles})
    moved = [name for name, p in model.named_parameters() if name.endswith("gamma")
             and not torch.equal(p, dict(untrained.named_parameters())[name])]
    assert moved  # the styles' γ were trained
    # 3 steps, then resumed to 6: the same weights as 6 at once
    half = session.start_run(multi_recipe(tmp_path, styles, schedule={"iterations": 3}), show_progress=False)
    resumed = session.resume_run(half.path, {"schedule.iterations": 6}, show_progress=False)
    ours, theirs = model.state_dict(), load_model(resumed.path).state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    card = json.loads((RunDir(run.path).latest_checkpoint() / "meta.json").read_text())["card"]
    assert [(s["style"], s["license"], s["attribution"]) for s in card["style"]] == [
        ("wave", "public domain", "Hokusai"), ("udnie", "public domain", "Picabia"), ("scream", "public domain", "Munch")]
    markdown = card_markdown(card)
    assert "One network for 3 styles" in markdown and "| udnie | udnie.jpg |" in markdown
    samples = sorted((run.path / "samples").glob("*.png"))
    assert Image.open(samples[-1]).width > 4 * 256  # content + a column per style
    assert stylekit.load(run.path).card["style"][1]["style"] == "udnie"


def test_adding_a_style_trains_only_its_own_rows(tmp_path, styles):
    first = session.start_run(multi_recipe(tmp_path, styles), show_progress=False)
    new = make_images(tmp_path / "new", 1, (40, 40), seed=77)[0]
    new = new.rename(new.with_name("muse.jpg"))
    raw = multi_recipe(tmp_path, [*styles, new], model={"init": str(first.path), "train": "new_styles"})
    added = session.start_run(raw, show_progress=False)
    before, after = load_model(first.path).state_dict(), load_model(added.path)
    assert after.styles == ["wave", "udnie", "scream", "muse"]
    for key, value in after.state_dict().items():
        if key.endswith((".gamma", ".beta")):
            assert torch.equal(value[:3], before[key]), key  # the old styles: bit-for-bit
        else:
            assert torch.equal(value, before[key]), key  # the shared layers: bit-for-bit
    fresh = [n for n in after.conditional_norms() if not (torch.equal(n.gamma[3], torch.ones_like(n.gamma[3]))
                                                          and torch.equal(n.beta[3], torch.zeros_like(n.beta[3])))]
    assert fresh  # the new style's rows trained
    x = random_images(1, (24, 24))
    with torch.no_grad():
        torch.testing.assert_close(after(x, "udnie"), load_model(first.path)(x, "udnie"))


@pytest.mark.parametrize("change, words", [
    ({"model": {**CIN, "styles": ["a", "b"]}}, ["model.styles: 2 names for 3 style.images"]),
    ({"model": {**CIN, "train": "new_styles"}}, ["model.train: new_styles", "model.init"]),
    ({"model": {**CIN, "init": "runs/nowhere"}}, ["model.init", "runs/nowhere", "no such file"]),
    ({"model": {**CIN, "name": "wings"}}, ["model.name", "unknown model 'wings'", "cin, cin_lite, johnson, lite"]),
    ({"model": {**CIN, "widht": 3}}, ["model.widht", "unknown key"]),
    ({"style": {"license": ["a", "b"]}}, ["license lists 2 entries for 3 images"]),
])
def test_multi_style_recipe_mistakes_are_one_clear_sentence(tmp_path, styles, change, words):
    raw = multi_recipe(tmp_path, styles)
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    assert_user_error(cli("train", recipe, "--no-progress"), *words)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_images_sharing_a_name_need_style_names(tmp_path, styles):
    raw = multi_recipe(tmp_path, [*styles, make_images(tmp_path / "again", 1, (40, 40))[0].rename(
        tmp_path / "again" / "wave.png")])
    with pytest.raises(ConfigError, match="several images are named wave.*model.styles"):
        session.start_run(raw, show_progress=False)


# -- use: the command line, Python, exports ------------------------------------------------------------------

@pytest.fixture
def multi_model(tmp_path):
    torch.manual_seed(0)
    net = ConditionalNet({"channels": 4, "residual_blocks": 1, "styles": ["wave", "udnie", "scream"]})
    for parameter in net.parameters():
        parameter.data += 0.3 * torch.randn_like(parameter)
    save_model(net, tmp_path / "multi.safetensors")
    photo = make_images(tmp_path / "photos", 1, size=(60, 44))[0]
    return tmp_path / "multi.safetensors", net.eval(), photo


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_cli_and_python_stylize_a_style_or_a_blend_alike(tmp_path, multi_model):
    file, net, photo = multi_model
    model = stylekit.load(file)
    assert model.styles == ["wave", "udnie", "scream"]
    for style in ("udnie", "wave=0.6,udnie=0.4"):
        out = tmp_path / f"{style}.png"
        result = cli("stylize", file, photo, "--style", style, "--precision", "fp32", "-o", out)
        assert result.exit_code == 0, result.output
        mapping = dict((k, float(v)) for k, v in (p.split("=") for p in style.split(","))) if "=" in style else style
        assert np.abs(read(out) - np.asarray(model.stylize(Image.open(photo), style=mapping, precision="fp32"),
                                             dtype=np.int16)).max() <= 1
    assert np.abs(read(tmp_path / "udnie.png") - read(tmp_path / "wave=0.6,udnie=0.4.png")).mean() > 1
    assert cli("stylize", file, photo, "--style", "udnie").exit_code == 0  # beside the photo, named after the style
    assert (photo.parent / f"{photo.stem}_multi-udnie.png").is_file()


def test_cli_says_how_to_choose_a_style(tmp_path, multi_model, monkeypatch):
    file, _, photo = multi_model
    assert_user_error(cli("stylize", file, photo), "3 styles (wave, udnie, scream)", "--style wave",
                      "--style wave=0.5,scream=0.5", "stylekit sheet")
    assert_user_error(cli("stylize", file, photo, "--style", "vangogh"), "unknown style 'vangogh'", "wave, udnie, scream")
    assert_user_error(cli("stylize", file, photo, "--style", "wave=x"), "NAME=WEIGHT")
    assert_user_error(cli("stylize", file, photo, "--style", "wave", "--strength", "2"), "--strength 2")
    single = tmp_path / "single.safetensors"
    save_model(stylekit.TransformerNet({"channels": 4, "residual_blocks": 1}), single)
    assert_user_error(cli("stylize", single, photo, "--style", "wave"), "trained for one style")
    assert_user_error(cli("stylize", file, photo, "--style", "wave", "--backend", "tensorrt"), "--backend 'tensorrt'")


def test_strength_and_preserved_colors(tmp_path, multi_model):
    file, _, photo = multi_model
    model = stylekit.load(file)
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.float64)
    assert np.abs(np.asarray(model.stylize(Image.open(photo), style="wave", strength=0.0), dtype=np.float64)
                  - original).max() <= 1
    kept = np.asarray(model.stylize(Image.open(photo), style="wave", preserve_color=True), dtype=np.float64)
    styled = np.asarray(model.stylize(Image.open(photo), style="wave"), dtype=np.float64)

    def ycbcr(rgb):
        return np.asarray(Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).convert("YCbCr"), dtype=np.float64)

    inside = (styled > 8).all(-1) & (styled < 247).all(-1) & (kept > 2).all(-1) & (kept < 253).all(-1)
    assert np.abs(ycbcr(kept)[..., 0] - ycbcr(styled)[..., 0])[inside].mean() < 1.5  # the stylized brightness
    assert np.abs(ycbcr(kept)[..., 1:] - ycbcr(original)[..., 1:])[inside].mean() < 1.5  # the photo's colors
    assert np.abs(ycbcr(styled)[..., 1:] - ycbcr(original)[..., 1:]).mean() > 3  # which stylizing changed
    out = tmp_path / "cli.png"
    assert cli("stylize", file, photo, "--style", "wave", "--preserve-color", "--strength", "0.5", "-o", out,
               "--precision", "fp32").exit_code == 0
    half = model.stylize(Image.open(photo), style="wave", preserve_color=True, strength=0.5, precision="fp32")
    assert np.abs(read(out) - np.asarray(half, dtype=np.int16)).max() <= 1


def test_sheet_shows_every_style_on_one_photo(tmp_path, multi_model):
    file, _, photo = multi_model
    out = tmp_path / "sheet.png"
    result = cli("sheet", file, photo, "-o", out, "--columns", "2", "--precision", "fp32")
    assert result.exit_code == 0 and "3 styles" in " ".join(result.output.split()), result.output
    sheet = Image.open(out)
    assert sheet.width == 4 + 2 * (384 + 4) and 2 * 281 < sheet.height < 3 * 281  # photo + 3 styles, 2 to a row
    assert_user_error(cli("sheet", file, photo, photo), "sheet takes one photo")


def test_onnx_runtime_backend_stylizes_as_pytorch_does(tmp_path, multi_model, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STYLEKIT_CACHE_DIR", str(tmp_path / "cache"))
    file, _, photo = multi_model
    for backend in ("torch", "onnxruntime"):
        result = cli("stylize", file, photo, "--style", "wave=0.5,scream=0.5", "--backend", backend,
                     "--precision", "fp32" if backend == "torch" else "auto", "-o", tmp_path / f"{backend}.png")
        assert result.exit_code == 0, result.output
    assert np.abs(read(tmp_path / "torch.png") - read(tmp_path / "onnxruntime.png")).max() <= 1
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1  # exported once, then reused
    assert cli("stylize", file, photo, "--style", "udnie", "--backend", "onnxruntime", "-o",
               tmp_path / "again.png").exit_code == 0
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    assert_user_error(cli("stylize", file, photo, "--style", "wave", "--backend", "onnxruntime", "--precision",
                          "bf16"), "--backend onnxruntime runs on the CPU in float32")


def test_exports_take_the_style_weights_as_an_input(tmp_path, multi_model):
    ort = pytest.importorskip("onnxruntime")
    file, net, _ = multi_model
    assert cli("export", file, "-f", "onnx", "-o", tmp_path / "m.onnx", "--verify-size", "64").exit_code == 0
    assert cli("export", file, "-f", "torchscript", "-o", tmp_path / "m.pt").exit_code == 0
    session_ = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    x = torch.rand(2, 3, 37, 53) * 255
    for weights in ([0.0, 1.0, 0.0], [0.5, 0.0, 0.5]):
        w = torch.tensor(weights)
        with torch.no_grad():
            expected = net(x, w)
            torch.testing.assert_close(scripted(x, w), expected, atol=0.05, rtol=0)
        got = session_.run(None, {"image": x.numpy(), "style_weights": w.numpy()})[0]
        assert np.abs(got - expected.numpy()).max() < 0.5
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "style_weights" in card or "second argument" in card


def test_run_folders_from_before_model_name_are_the_same_config(tmp_path):
    """config.yaml files written before networks were plugins have no model.name/init/train (nor a multi-style
    network's keys): resuming them, or an ablation grid holding them, sees no change at the new defaults."""
    from stylekit.config import load_recipe
    from stylekit.session import config_changes

    new = load_recipe(None, raw=tiny_recipe(tmp_path)).model_dump(mode="json", exclude={"extends"})
    old = json.loads(json.dumps(new))
    for key in ("name", "init", "train"):
        del old["model"][key]
    assert config_changes(old, new) == []
    old["model"]["channels"] = 16
    assert config_changes(old, new) == ["model.channels"]


def test_evaluate_judges_a_multi_style_model_in_the_style_asked_for(tmp_path, multi_model):
    """`stylekit evaluate --model-style NAME`: the model renders that style, and without it the user is told."""
    from stylekit.evaluate.runner import EvaluationError, open_source

    file, net, photo = multi_model
    source = open_source(file, model_style="udnie")
    content = torch.rand(1, 3, 36, 52) * 255
    expected = stylekit.load(file).stylize(content, style="udnie", precision="fp32")
    assert source.name.endswith(":udnie")
    torch.testing.assert_close(source.stylize("x", content, torch.device("cpu")), expected, atol=0.5, rtol=0)
    with pytest.raises(EvaluationError, match="multi-style model.*wave, udnie, scream.*--model-style"):
        open_source(file)
    result = cli("evaluate", file, "--content", photo.parent, "--metrics", "ssim", "-o", tmp_path / "eval")
    assert_user_error(result, "--model-style")
    result = cli("evaluate", file, "--model-style", "scream", "--content", photo.parent, "--metrics", "ssim",
                 "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert ":scream,img_000," in (tmp_path / "eval" / "metrics.csv").read_text()  # the file's folder, in that style
    # the model card says which style each held-out result is for
    result = cli("export", file, "--format", "safetensors", "-o", tmp_path / "shelf" / "multi.safetensors",
                 "--evaluation", tmp_path / "eval" / "metrics.json")
    assert result.exit_code == 0, result.output
    assert [entry["style"] for entry in read_card(tmp_path / "shelf" / "multi.safetensors")["evaluation"]] == ["scream"]
    card_text = (tmp_path / "shelf" / "multi.md").read_text()
    assert "| data set | style | images | `ssim` |" in card_text and "| scream | 1 |" in card_text


def test_starting_from_a_model_says_which_tensors_it_could_not_fill(tmp_path):
    """model.init copies what matches: the training header says so, and names what stays at initialization
    (a model trained with plain instance norm has no variance floors for an `instance_floor` network)."""
    from io import StringIO

    from rich.console import Console

    from stylekit.testing import tiny_recipe

    plain = session.start_run(tiny_recipe(tmp_path, schedule={"iterations": 2}), show_progress=False)

    def header(model):
        out = StringIO()
        session.start_run(tiny_recipe(tmp_path, model=model, schedule={"iterations": 1}),
                          console=Console(file=out, width=200), show_progress=False)
        return out.getvalue()

    same = header({"init": str(plain.path)})
    assert f"starting from {plain.path}: all " in same and "left at initialization" not in same
    floored = header({"init": str(plain.path), "norm": "instance_floor"})
    assert "left at initialization" in floored and "running_var" in floored
