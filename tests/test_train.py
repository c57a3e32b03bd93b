"""End to end on CPU with tiny networks: train → checkpoint → stylize, resume, NaN handling, gradients."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from stylekit.checkpoint import latest_checkpoint, load_model
from stylekit.cli import app
from stylekit.config import validate_recipe
from stylekit.errors import NonFiniteLossError
from stylekit.losses.base import LossBatch
from stylekit.testing import make_images, tiny_recipe
from stylekit.trainer import Trainer


def test_gradients_reach_the_transformer_and_never_the_backbone(tmp_path):
    trainer = Trainer(validate_recipe(tiny_recipe(tmp_path)), tmp_path / "run", show_progress=False)
    trainer.build()
    x = torch.rand(2, 3, 32, 32) * 255
    y = trainer.model(x)
    feats = trainer.perception.extract(y, trainer.output_taps)
    with torch.no_grad():
        content = trainer.perception.extract(x, trainer.taps)
    total, _ = trainer.composer(LossBatch(y, x, feats, content))
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())
    backbone = trainer.perception.network("backbone")
    assert all(not p.requires_grad and p.grad is None for p in backbone.parameters())
    backbone.train()
    assert not backbone.training  # frozen nets stay in eval mode


def test_train_checkpoint_stylize_end_to_end(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path)))
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(recipe), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    for name in ("config.yaml", "run.json", "status.json", "metrics.jsonl", "loss_curves.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png", "step_0000006.png"]
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert set(rows[-1]["terms"]) == {"content", "style", "tv"}
    assert rows[-1]["terms"]["style"]["weighted"] == pytest.approx(1e3 * rows[-1]["terms"]["style"]["raw"])
    ckpt = latest_checkpoint(run)
    assert ckpt.name == "step_0000006"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["losses"]["style"]["reduction"] == "sum"  # fully resolved
    timing = json.loads((run / "run.json").read_text())["timing"]  # README time claims come from here
    assert timing["steps"] == 6 and timing["steps_per_second"] > 0 and timing["wall_time_s"] > 0
    assert timing["precision"] in ("float32", "bfloat16") and timing["precision_reason"]
    assert f"({timing['precision_reason']})" in " ".join(result.output.split())  # the header says why

    inputs = make_images(tmp_path / "inputs", 2, size=(45, 29), seed=5)
    result = runner.invoke(app, ["stylize", str(run), str(tmp_path / "inputs"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    from PIL import Image

    for source in inputs:
        assert Image.open(tmp_path / "out" / f"{source.stem}.png").size == (45, 29)


def test_precision_auto_says_why(monkeypatch):
    from stylekit.hardware import pick_precision, precision_reason

    cpu = torch.device("cpu")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # how an AVX2-only laptop looks to oneDNN
    assert pick_precision("auto", cpu) == torch.float32
    assert "no bf16 units" in precision_reason("auto", cpu, torch.float32)
    assert precision_reason("fp32", cpu, torch.float32) == "set by the recipe (precision: fp32)"


def test_resume_reaches_the_same_weights(tmp_path, monkeypatch):
    raw = tiny_recipe(tmp_path, schedule={"iterations": 6}, log={"checkpoint_every": 3, "sample_every": 100})
    Trainer(validate_recipe(raw), tmp_path / "straight", show_progress=False).fit()

    # Interrupt (Ctrl-C) during step 5: the trainer writes a checkpoint at step 4 and exits.
    original = Trainer.train_step

    def interrupt_at_5(self, images):
        if self.step == 4:
            raise KeyboardInterrupt
        return original(self, images)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_5)
    with pytest.raises(KeyboardInterrupt):
        Trainer(validate_recipe(raw), tmp_path / "resumed", show_progress=False).fit()
    assert json.loads((tmp_path / "resumed" / "status.json").read_text())["state"] == "interrupted"
    assert latest_checkpoint(tmp_path / "resumed").name == "step_0000004"
    monkeypatch.setattr(Trainer, "train_step", original)
    Trainer(validate_recipe(raw), tmp_path / "resumed", resume=True, show_progress=False).fit()

    a = load_file(str(latest_checkpoint(tmp_path / "straight") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(tmp_path / "resumed") / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]


def test_nan_stops_the_run_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    raw = tiny_recipe(tmp_path, schedule={"iterations": 6}, log={"checkpoint_every": 2, "sample_every": 100})
    trainer = Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False)
    from stylekit.losses.style import StyleLoss

    original = StyleLoss.forward

    def poisoned(self, batch):
        value = original(self, batch)
        return value * float("nan") if trainer.step >= 3 else value

    monkeypatch.setattr(StyleLoss, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 4 in term\(s\) style \(= nan\).*step_0000002"):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "run").name == "step_0000002"
    model = load_model(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and "style" in status["reason"]


def test_corrupt_training_images_are_counted(tmp_path):
    raw = tiny_recipe(tmp_path, schedule={"iterations": 4})
    (tmp_path / "content" / "img_002.jpg").write_bytes(b"\x00garbage")
    result = Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False).fit()
    assert len(result.skipped_images) == 1 and "img_002.jpg" in result.skipped_images[0]
    assert json.loads((tmp_path / "run" / "status.json").read_text())["skipped_images"] == 1


def test_checkpoint_loading_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    from stylekit.errors import StylekitError

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(StylekitError, match="not a stylekit transformer checkpoint"):
        load_model(tmp_path / "other.safetensors")


def test_training_samples_show_each_photo_as_stylize_would(tmp_path, monkeypatch):
    """The sample grids are where a run is looked at: each cell is what `stylekit stylize` gives for that photo
    (the network's edge rows on the mirrored margin, cropped off), not the network's raw output."""
    from PIL import Image

    import stylekit.trainer as trainer_module
    from stylekit.stylize import stylize_tensor

    trainer = Trainer(validate_recipe(tiny_recipe(tmp_path)), tmp_path / "run", show_progress=False)
    trainer.build()
    grids = []
    monkeypatch.setattr(trainer_module, "image_grid", lambda rows, **_: grids.append(rows) or Image.new("RGB", (8, 8)))
    monkeypatch.setattr(type(trainer.run), "sample_file", lambda self, step: tmp_path / "samples" / "grid.png")
    monkeypatch.setattr(type(trainer.run), "inside", lambda self, path: path)
    trainer.write_samples()
    (rows,) = grids
    assert len(rows) == len(trainer.samples)
    for (photo, styled), image in zip(rows, trainer.samples):
        torch.testing.assert_close(photo, image[0])
        expected = stylize_tensor(trainer.model, image, dtype=trainer.dtype, tile=0)[0]
        torch.testing.assert_close(styled, expected)
        raw = trainer.model(image).float()[0]
        assert not torch.allclose(styled, raw)  # the margin changes what the cells show
