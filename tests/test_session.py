"""The runtime session: `stylekit.train` from Python, one way to start and resume runs for every entry point,
checks before any folder exists, Ctrl-C that says how to go on, and components built from kind + name + options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

import stylekit
from stylekit import session
from stylekit.cli import app
from stylekit.errors import ConfigError, StylekitError
from stylekit.testing import tiny_recipe
from stylekit.trainer import Trainer


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def write_recipe(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_from_python_makes_the_run_the_cli_makes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(tmp_path, schedule={"iterations": 4}))
    run = stylekit.train(recipe, overrides={"losses.tv.weight": 1e-5}, progress=False)
    assert run.path == tmp_path / "runs" / "tiny-tv.weight=1e-05" and run.steps == 4 and run.state == "finished"
    assert [row["step"] for row in run.metrics()] == [2, 4] and set(run.final) == {"content", "style", "tv"}
    assert run.load().stylize(Image.new("RGB", (20, 12))).size == (20, 12)
    result = cli("train", recipe, "--set", "losses.tv.weight=1e-5", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "tiny-tv.weight=1e-05-2" / "config.yaml").read_text() == run.folder.config.read_text()


def test_train_from_python_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = tiny_recipe("work", schedule={"iterations": 6})  # relative paths: relative to the working folder
    straight = stylekit.train(raw, run_dir="straight", progress=False)
    first = stylekit.train(raw, overrides=["schedule.iterations=3"], run_dir="resumed", progress=False)
    resumed = stylekit.train(resume=first.path, overrides={"schedule.iterations": 6}, progress=False)
    assert resumed.path == first.path and resumed.steps == 6
    a, b = straight.load(), resumed.load()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(StylekitError, match="recipe cannot be given with it"):
        stylekit.train(raw, resume=first.path)


def test_a_failed_check_leaves_no_run_folder(tmp_path):
    base = tiny_recipe(tmp_path)
    for change, named in ((dict(data={"root": str(tmp_path / "missing")}), "data.root"),
                          (dict(style={"images": [str(tmp_path / "nope.jpg")]}), "style.images[0]")):
        with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
            session.start_run({**base, **change})
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    if not torch.cuda.is_available():
        result = cli("train", write_recipe(tmp_path / "r.yaml", base), "--set", "device=cuda")
        assert result.exit_code == 2 and "device 'cuda'" in str(result.exception)
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_that_fails_while_building_leaves_no_folder(tmp_path, monkeypatch):
    """Checks pass, the folder is made and locked, then building fails (here: weights missing offline)."""
    raw = tiny_recipe(tmp_path, backbone={"name": "vgg16", "options": {"weights": "default"}})
    with pytest.raises(StylekitError, match="vgg16"):
        session.start_run(raw)
    assert list((tmp_path / "runs").iterdir()) == []


def test_an_output_dir_that_cannot_be_made_names_the_key(tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tmp_path))
    (tmp_path / "file").write_text("a file, not a folder")
    for output_dir in ("/proc/nope", tmp_path / "file" / "runs"):
        result = cli("train", recipe, "--set", f"output_dir={output_dir}")
        assert result.exit_code == 2, result.output
        assert f"output_dir: {output_dir}" in " ".join(result.output.split())


def test_ctrl_c_says_where_it_stopped_and_how_to_resume(tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(tmp_path))
    step = Trainer.train_step

    def interrupt_at_4(self, images):
        if self.step == 3:
            raise KeyboardInterrupt
        return step(self, images)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_4)
    result = cli("train", recipe, "--no-progress")
    run_dir = tmp_path / "runs" / "tiny"
    assert result.exit_code == 130
    message = " ".join(result.output.split())
    assert f"interrupted at step 3, checkpointed; resume with `stylekit train --resume {run_dir}`" in message
    monkeypatch.setattr(Trainer, "train_step", step)
    assert cli("train", "--resume", run_dir, "--no-progress").exit_code == 0
    assert stylekit.Run(run_dir).state == "finished"


def test_build_component_is_one_way_for_every_kind(tmp_path):
    vgg = session.build_component("backbone", "vgg16", {"weights": "random"})
    assert vgg.options.weights == "random"
    term = session.build_component("loss", "style", {"weight": 3}, key="style_b")
    assert (term.key, term.weight) == ("style_b", 3.0)
    options = type(term).Options(weight=2)
    assert session.build_component("loss", "style", options).options is options  # typed: not validated again
    with pytest.raises(ConfigError, match=r"losses\.x: invalid options for loss tv:\n  losses\.x\.wieght: unknown key"):
        session.build_component("loss", "tv", {"wieght": 1}, where="losses.x")
    with pytest.raises(StylekitError, match="--network: unknown depth 'nope'; known depth names"):
        session.build_component("depth", "nope", where="--network")


def test_a_model_is_found_by_path_or_shipped_name(tmp_path):
    from stylekit.checkpoint import save_checkpoint
    from stylekit.models import zoo
    from stylekit.models.transformer import TransformerNet

    save_checkpoint(tmp_path / "run", 5, TransformerNet({"channels": 4}), {}, {})
    assert session.resolve_model(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "step_0000005" / \
        "model.safetensors"
    for name in zoo.list_models():
        assert session.resolve_model(name) == zoo.shipped_model_file(name)
    with pytest.raises(StylekitError, match="no such file or folder"):
        session.resolve_model(tmp_path / "typo")


def test_building_the_registry_does_not_load_the_evaluation_runtime():
    code = ("import sys; from stylekit.plugins import get_registry; assert get_registry().names('metric'); "
            "loaded = [m for m in sys.modules if m.startswith(('stylekit.evaluate.', 'stylekit.trainer'))]; "
            "assert set(loaded) <= {'stylekit.evaluate.builtin_metrics', 'stylekit.evaluate.looks', "
            "'stylekit.evaluate.functional'}, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
