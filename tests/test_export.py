"""ONNX and TorchScript export: dynamic sizes, onnxruntime agreement, loadable without stylekit."""

import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from stylekit.checkpoint import save_model
from stylekit.cli import app
from stylekit.models.transformer import TransformerNet


@pytest.fixture(params=["instance", "instance_floor"])
def checkpoint(tmp_path, request):
    torch.manual_seed(0)
    net = TransformerNet({"channels": 8, "residual_blocks": 1, "norm": request.param, "upsample": "deconv"})
    for p in net.parameters():  # move away from the init so every layer matters
        p.data += 0.05 * torch.randn_like(p)
    for b in net.buffers():  # and the floored norms' variance floors from their start value
        if b.is_floating_point():
            b.data.uniform_(0.5, 2.0)
    path = tmp_path / "model.safetensors"
    save_model(net, path)
    return path, net.eval()


def test_onnx_export_matches_pytorch_at_any_size(tmp_path, checkpoint):
    ort = pytest.importorskip("onnxruntime")
    path, net = checkpoint
    result = CliRunner().invoke(app, ["export", str(path), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "abs difference" in " ".join(result.output.split())
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for h, w in ((37, 50), (64, 64), (81, 45)):
        x = torch.rand(2, 3, h, w) * 255
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            expected = net(x).numpy()
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1.0


def test_onnx_verification_fails_loudly(tmp_path, checkpoint, monkeypatch):
    pytest.importorskip("onnxruntime")
    from stylekit import export
    from stylekit.errors import StylekitError

    path, net = checkpoint
    monkeypatch.setattr(export, "ONNX_TOLERANCE", 0.0)
    with pytest.raises(StylekitError, match="onnxruntime differs"):
        export.export_onnx(net, tmp_path / "m.onnx", verify_size=64)


def test_torchscript_loads_without_stylekit(tmp_path, checkpoint):
    path, net = checkpoint
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(app, ["export", str(path), "--format", "torchscript", "-o", str(out)])
    assert result.exit_code == 0, result.output
    code = ("import sys; sys.modules['stylekit'] = None\n"  # any import of stylekit now fails
            "import torch\n"
            f"m = torch.jit.load({str(out)!r})\n"
            "y = m(torch.rand(1, 3, 37, 50) * 255)\n"
            "assert 'stylekit' not in sys.modules or sys.modules['stylekit'] is None\n"
            "print(tuple(y.shape), float(y.min()) >= 0, float(y.max()) <= 255)")
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("(1, 3, 37, 50) True True")
    loaded = torch.jit.load(str(out))
    x = torch.rand(1, 3, 30, 41) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), atol=1e-3, rtol=0)


def test_half_precision_model_file_is_half_the_size_and_stylizes_alike(tmp_path, checkpoint):
    """--format safetensors: the file to share or ship in stylekit/models/pretrained/ (float16 weights)."""
    from stylekit.checkpoint import load_model
    from stylekit.models.zoo import list_models, shipped_model_file

    path, net = checkpoint
    shelf = tmp_path / "pretrained"
    out = shelf / "tiny_wave.safetensors"
    result = CliRunner().invoke(app, ["export", str(path), "--format", "safetensors", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size < 0.6 * path.stat().st_size
    loaded = load_model(out)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # computed in float32
    x = torch.rand(1, 3, 33, 47) * 255
    with torch.no_grad():
        assert (loaded(x) - net(x)).abs().max() < 1.0  # on the 0–255 scale
    assert list_models(root=shelf) == ["tiny_wave"] and shipped_model_file("tiny_wave", root=shelf) == out
    assert (shelf / "tiny_wave.md").is_file()  # its card, named after it (several models share the folder)
    wrong = CliRunner().invoke(app, ["export", str(path), "--format", "safetensors", "-o", str(tmp_path / "m.pt")])
    assert wrong.exit_code == 2 and ".safetensors" in wrong.output


def test_shipped_models_are_listed_and_stylize_by_name(tmp_path, checkpoint, monkeypatch):
    """`stylekit models` lists what ships; `stylekit stylize --model NAME photo -o out` needs no training."""
    from PIL import Image

    from stylekit.models import zoo

    import json

    from stylekit.checkpoint import read_card

    path, _ = checkpoint
    shelf = tmp_path / "pretrained"
    report = tmp_path / "eval" / "metrics.json"  # what `stylekit evaluate` writes, reduced to what cards read
    report.parent.mkdir()
    report.write_text(json.dumps({
        "inputs": {"models": [str(tmp_path / "other.safetensors"), str(path)], "content": "/data/nyu_depth_v2/rgb"},
        "sources": ["other", "tiny"], "images": ["a", "b", "c"],
        "judges": [{"text": "depth judged by X; lite0 shares weights with tiny (style term), not with tiny_b."}],
        "summary": {"tiny": {"depth_ordinal": {"mean": 0.81, "n": 3}, "edge_f": {"mean": 0.42, "n": 3}}}}))
    result = CliRunner().invoke(app, ["export", str(path), "--format", "safetensors", "-o",
                                      str(shelf / "tiny_wave.safetensors"), "--evaluation", str(report),
                                      "--name", "tiny_wave"])
    assert result.exit_code == 0, result.output
    card = read_card(shelf / "tiny_wave.safetensors")
    assert card["name"] == "tiny_wave"  # the name it ships under, not the run folder's
    judges = "depth judged by X; lite0 shares weights with this model (style term), not with tiny_b."  # its name
    assert card["evaluation"] == [{"dataset": "nyu_depth_v2", "images": 3, "judges": judges,
                                   "means": {"depth_ordinal": 0.81, "edge_f": 0.42}}]
    card_text = (shelf / "tiny_wave.md").read_text()  # the card for people shows the held-out results too
    assert "| nyu_depth_v2 | 3 | 0.81 | 0.42 |" in card_text and "depth judged by X" in card_text
    assert card_text.startswith("# tiny_wave\n")
    monkeypatch.setattr(zoo, "pretrained_dir", lambda: shelf)
    listed = CliRunner().invoke(app, ["models"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "tiny_wave" in listed.output
    assert "depth_ordinal 0.81" in listed.output
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"inputs": {"models": [str(tmp_path / "other.safetensors")]}, "sources": ["o"]}))
    refused = CliRunner().invoke(app, ["export", str(path), "--format", "safetensors", "-o",
                                       str(tmp_path / "x.safetensors"), "--evaluation", str(foreign)])
    assert refused.exit_code == 2 and "did not evaluate" in refused.output
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tmp_path / "photo.jpg")
    result = CliRunner().invoke(app, ["stylize", "--model", "tiny_wave", str(tmp_path / "photo.jpg"), "-o",
                                      str(tmp_path / "out.jpg")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.jpg").size == (40, 30)
    unknown = CliRunner().invoke(app, ["stylize", "--model", "nope", str(tmp_path / "photo.jpg")])
    assert unknown.exit_code != 0 and "tiny_wave" in unknown.output  # the error lists what ships
