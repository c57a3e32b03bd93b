"""The shipped recipes validate, and the quickstart runs with the real HED weights."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SHARED_WEIGHTS, needs_shared
from stylekit.cli import app, main
from stylekit.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.losses and all(Path(p).is_file() for p in recipe.style.images)


def test_paper_settings_in_johnson_recipe():
    r = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "johnson.yaml")
    assert (r.data.image_size, r.schedule.batch_size, r.schedule.iterations, r.optim.lr) == (256, 4, 40000, 1e-3)
    assert r.losses["content"]["layer"] == "relu2_2" and r.losses["content"]["weight"] == 1
    assert r.losses["style"]["layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert r.losses["style"]["weight"] == 5 and 1e-6 <= r.losses["tv"]["weight"] <= 1e-4


@needs_shared
def test_quickstart_trains_with_real_hed_weights(tmp_path):
    result = CliRunner().invoke(app, [
        "train", str(ROOT / "recipes" / "quickstart.yaml"), "--weights-dir", str(SHARED_WEIGHTS), "--run-dir", str(tmp_path / "run"),
        "--set", "schedule.iterations=2", "--set", "data.image_size=48", "--set", "data.workers=0",
        "--set", "log.num_samples=1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoints" / "step_0000002" / "model.safetensors").is_file()


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["stylekit", "train", str(ROOT / "recipes" / "quickstart.yaml"), "--without", "edge"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "unknown loss term 'edge'; this recipe's terms are: content, depth, style, tv" in err
    assert "Traceback" not in err
