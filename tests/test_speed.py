"""Speed paths give fp32's results within mixed-precision tolerance; deferred NaN checks; decoded-image cache; bench."""

import json

import pytest
import torch
from typer.testing import CliRunner

from stylekit.checkpoint import latest_checkpoint, load_model
from stylekit.cli import app
from stylekit.config import validate_recipe
from stylekit.data import ImageFolder, list_images
from stylekit.errors import NonFiniteLossError
from stylekit.testing import tiny_recipe
from stylekit.trainer import Trainer


def _losses(tmp_path, name, **overrides):
    raw = tiny_recipe(tmp_path, **overrides)
    trainer = Trainer(validate_recipe(raw), tmp_path / name, show_progress=False)
    trainer.build()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    raw = trainer.train_step(x)
    return {k: float(v) for k, v in raw.items()}, trainer


def test_mixed_precision_and_channels_last_match_fp32(tmp_path):
    reference, _ = _losses(tmp_path, "ref", precision="fp32", performance={"channels_last": False})
    for precision, channels_last in (("fp32", True), ("bf16", False), ("bf16", True)):
        losses, trainer = _losses(tmp_path, f"{precision}-{channels_last}", precision=precision,
                                  performance={"channels_last": channels_last})
        assert trainer.channels_last is channels_last and trainer.perception_channels_last is channels_last
        if channels_last:
            assert trainer.model.down[0][1].weight.is_contiguous(memory_format=torch.channels_last)
        rtol = 1e-4 if precision == "fp32" else 5e-2
        for key, value in reference.items():
            assert losses[key] == pytest.approx(value, rel=rtol), (precision, channels_last, key)


def test_channels_last_default_follows_device_and_precision(tmp_path):
    from stylekit.hardware import pick_channels_last

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_channels_last(None, cuda, torch.bfloat16) == (True, True)
    assert pick_channels_last(None, cpu, torch.bfloat16) == (False, True)  # NHWC helps oneDNN's bf16 VGG only
    assert pick_channels_last(None, cpu, torch.float32) == (False, False)
    assert pick_channels_last(True, cpu, torch.float32) == (True, True)
    _, trainer = _losses(tmp_path, "auto", precision="bf16", device="cpu")
    assert (trainer.channels_last, trainer.perception_channels_last) == (False, True)
    vgg_weight = next(trainer.perception.network("backbone").parameters())
    assert vgg_weight.is_contiguous(memory_format=torch.channels_last)
    assert trainer.model.down[0][1].weight.is_contiguous()


def test_content_pass_stops_at_the_layers_compared_with_x(tmp_path):
    """Style layers are tapped on ŷ only: the no-grad pass on x stops at the content layer."""
    _, trainer = _losses(tmp_path, "taps", precision="fp32")
    style_layers = trainer.composer.terms[[t.key for t in trainer.composer.terms].index("style")].options.layers
    assert [t.layer for t in trainer.taps] == ["relu2_2"]
    assert {t.layer for t in trainer.output_taps} == {"relu2_2", *style_layers}
    seen = []
    backbone = trainer.perception.network("backbone")
    hook = backbone.register_forward_hook(lambda m, args, out: seen.append(sorted(out)))
    try:
        trainer.train_step(torch.rand(2, 3, 32, 32) * 255)
    finally:
        hook.remove()
    assert seen == [sorted({"relu2_2", *style_layers}), ["relu2_2"]]


def test_deferred_finite_check_never_writes_non_finite_weights(tmp_path, monkeypatch):
    # As on CUDA: the host looks at the device-side flag only every 4 steps (and before any output).
    raw = tiny_recipe(tmp_path, schedule={"iterations": 8},
                      log={"every": 4, "checkpoint_every": 4, "sample_every": 100},
                      performance={"finite_check_every": 4})
    trainer = Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False)
    from stylekit.losses.content import ContentLoss

    original = ContentLoss.forward
    monkeypatch.setattr(ContentLoss, "forward",
                        lambda self, batch: original(self, batch) * (float("inf") if trainer.step == 5 else 1.0))
    with pytest.raises(NonFiniteLossError, match=r"step 6 in term\(s\) content \(= inf\).*stopped at step 8.*"
                                                 r"after step 5.*step_0000004"):
        trainer.fit()
    assert trainer.finite_every == 4
    assert latest_checkpoint(tmp_path / "run").name == "step_0000004"
    assert all(torch.isfinite(p).all() for p in load_model(tmp_path / "run").parameters())
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [4]


def test_decoded_cache_is_reused(tmp_path):
    raw = tiny_recipe(tmp_path)
    files = list_images(tmp_path / "content")
    plain = ImageFolder(files, 32, "center", 0)
    cached = ImageFolder(files, 32, "center", 0, cache_dir=tmp_path / "cache")
    first = [cached[(i, i)]["image"] for i in range(len(files))]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == len(files)
    again = [cached[(i, i)]["image"] for i in range(len(files))]
    for a, b, c in zip(first, again, [plain[(i, i)]["image"] for i in range(len(files))]):
        assert torch.equal(a, b) and a.shape == c.shape == (3, 32, 32)
        assert (a - c).abs().mean() < 8  # same picture, resized via the cached copy
    recipe = validate_recipe(tiny_recipe(tmp_path, data={"cache_dir": str(tmp_path / "cache2")},
                                         schedule={"iterations": 2}))
    Trainer(recipe, tmp_path / "run", show_progress=False).fit()
    assert len(list((tmp_path / "cache2").glob("*.npy"))) >= 2
    assert raw  # the recipe helper wrote the images


def test_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--size", "32", "--batch", "2", "--steps", "1", "--rounds", "2",
                                      "--warmup", "1", "--no-stylize", "--device", "cpu", "--json", str(out),
                                      "--set", "model.channels=8", "--set", "model.residual_blocks=1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"stylekit", "reference"}
    assert data["results"]["stylekit"]["steps_per_s"] > 0 and data["ratio"] > 0
    assert data["results"]["reference"]["flops_per_step"] > 1e6


def test_compile_wraps_the_hot_path_but_not_checkpoints(tmp_path, monkeypatch):
    compiled = []

    def fake_compile(module, **kwargs):
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    recipe = validate_recipe(tiny_recipe(tmp_path, performance={"compile": True}, schedule={"iterations": 1}))
    trainer = Trainer(recipe, tmp_path / "run", show_progress=False)
    trainer.fit()
    assert compiled == ["TransformerNet", "VGG16"]
    assert load_model(tmp_path / "run") is not None  # plain keys, no _orig_mod. prefixes


def test_gram_matrix_reads_nhwc_and_low_precision_within_tolerance():
    from stylekit.functional import gram_matrix

    x = torch.randn(2, 16, 12, 10, generator=torch.Generator().manual_seed(0)).relu()
    reference = gram_matrix(x)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert gram_matrix(nhwc).dtype == torch.float32
    torch.testing.assert_close(gram_matrix(nhwc), reference)
    low = gram_matrix(nhwc.bfloat16())  # fp32 accumulation, one bf16 rounding per entry
    assert low.dtype == torch.float32
    assert float((low - reference).abs().max() / reference.abs().max()) < 2**-7


def test_reflection_pad_stays_in_bf16_under_autocast():
    import torch.nn.functional as F

    from stylekit.models.fast_layers import ReflectionPad

    x = torch.randn(1, 4, 6, 6).bfloat16()
    with torch.autocast("cpu", torch.bfloat16):
        assert F.pad(x, (2, 2, 2, 2), mode="reflect").dtype == torch.float32  # what autocast does to a plain pad
        padded = ReflectionPad(2)(x)
    assert padded.dtype == torch.bfloat16
    torch.testing.assert_close(padded.float(), F.pad(x.float(), (2, 2, 2, 2), mode="reflect"))


def test_gram_matrix_gradient_matches_autograd_in_both_layouts():
    from stylekit.functional import _SelfProduct

    f = torch.randn(2, 6, 20, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _SelfProduct.apply(t, False), (f,))
    assert torch.autograd.gradcheck(lambda t: _SelfProduct.apply(t, True), (f,))
    from stylekit.functional import gram_matrix

    x = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(1))
    for memory_format in (torch.contiguous_format, torch.channels_last):
        a = x.clone().contiguous(memory_format=memory_format).requires_grad_(True)
        b = x.clone().requires_grad_(True)
        target = torch.randn(8, 8)
        (gram_matrix(a) - target).pow(2).sum().backward()
        fb = b.reshape(2, 8, 30)
        ((fb @ fb.transpose(1, 2)) / (8 * 30) - target).pow(2).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
@pytest.mark.parametrize("p,shape", [(1, (2, 3, 6, 7)), (4, (1, 2, 9, 11)), (2, (3, 5, 5))])
def test_pad_backward_matches_aten(mode, p, shape):
    import torch.nn.functional as F

    from stylekit.models.fast_layers import ReflectionPad, _Pad

    x = torch.randn(*shape, dtype=torch.double, requires_grad=True)
    grad = torch.randn(*shape[:-2], shape[-2] + 2 * p, shape[-1] + 2 * p, dtype=torch.double)
    expected, = torch.autograd.grad(F.pad(x, (p,) * 4, mode=mode), x, grad)
    out = ReflectionPad(p)(x) if mode == "reflect" else _Pad.apply(x, p, mode)
    torch.testing.assert_close(out, F.pad(x, (p,) * 4, mode=mode))
    got, = torch.autograd.grad(out, x, grad)
    torch.testing.assert_close(got, expected)


def test_bench_baseline_transformer_has_stylekits_shapes_but_plain_layers():
    from stylekit.bench import ReferenceTransformerNet
    from stylekit.models.transformer import TransformerNet

    ours, theirs = TransformerNet({"norm": "instance", "upsample": "nearest"}), ReferenceTransformerNet()
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in theirs.parameters())
    assert {type(m).__module__.split(".")[0] for m in theirs.modules() if not list(m.children())} == {"torch"}
    x = torch.rand(1, 3, 36, 28) * 255
    assert theirs(x).shape == x.shape
