"""Ablations: --without/--only/--set on single runs, grid expansion, resume of an interrupted grid, summaries."""

import csv
import json

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from stylekit.ablate import Calibration, ablate, expand_grid, parse_vary, plan_actions, split_values
from stylekit.cli import app
from stylekit.config import load_recipe
from stylekit.errors import ConfigError
from stylekit.testing import tiny_recipe
from stylekit.trainer import Trainer


@pytest.fixture
def recipe_file(tmp_path):
    """A tiny recipe: 4 steps, metrics every step, checkpoints every 2 (so an interrupted run can resume)."""
    raw = tiny_recipe(tmp_path, schedule={"iterations": 4},
                      log={"every": 1, "sample_every": 100, "checkpoint_every": 2, "num_samples": 2})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def quiet():
    return Console(record=True, width=200)


def no_calibration(grid, run=None):
    return Calibration(build_s=1.0, step_s=0.5, steps=1, device="cpu")


# -- single runs ---------------------------------------------------------------

def test_without_removes_the_term_from_config_and_computation(recipe_file, tmp_path):
    recipe = load_recipe(recipe_file, without=["tv"])
    assert sorted(recipe.losses) == ["content", "style"]
    trainer = Trainer(recipe, tmp_path / "run", show_progress=False)
    trainer.build()
    assert trainer.composer.keys == ["content", "style"]
    assert sorted(load_recipe(recipe_file, only=["content", "style"]).losses) == ["content", "style"]


def test_cli_config_applies_without_only_and_set(recipe_file):
    runner = CliRunner()
    out = runner.invoke(app, ["config", str(recipe_file), "--without", "tv", "--set", "losses.style.weight=10",
                              "--set", "losses.style.layers=[relu2_2,relu3_3]"])
    assert out.exit_code == 0, out.output
    config = yaml.safe_load(out.stdout)
    assert sorted(config["losses"]) == ["content", "style"]
    assert config["losses"]["style"]["weight"] == 10
    assert config["losses"]["style"]["layers"] == ["relu2_2", "relu3_3"]
    out = runner.invoke(app, ["config", str(recipe_file), "--only", "content,style"])
    assert sorted(yaml.safe_load(out.stdout)["losses"]) == ["content", "style"]


def test_cli_errors_name_unknown_terms(recipe_file):
    from stylekit.cli import main

    runner = CliRunner()
    for args, message in [(["--without", "depth"], "unknown loss term 'depth'; this recipe's terms are: content, "
                                                   "style, tv"),
                          (["--only", "content,dpth"], "unknown loss term 'dpth'"),
                          (["--set", "losses.dpth.weight=1"], "unknown loss term 'dpth'")]:
        result = runner.invoke(app, ["config", str(recipe_file), *args])
        assert result.exit_code != 0
        assert message in str(result.exception)
    # through main(): a one-line error, exit code 2, no traceback
    import sys

    argv = sys.argv
    sys.argv = ["stylekit", "config", str(recipe_file), "--without", "depth"]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    assert exit_info.value.code == 2


# -- grid expansion ------------------------------------------------------------

def test_parse_vary_values_and_errors():
    spec = parse_vary("losses.depth.weight=0,1,5,10")
    assert spec.key == "losses.depth.weight" and spec.values == (0, 1, 5, 10) and spec.short == "depth.weight"
    assert parse_vary("losses.tv.weight=1e-6,1e-5").values == pytest.approx((1e-6, 1e-5))
    assert split_values("[relu2_2],[relu2_2,relu3_3]") == ["[relu2_2]", "[relu2_2,relu3_3]"]
    assert parse_vary("losses.style.layers=[relu2_2],[relu2_2,relu3_3]").values == (["relu2_2"],
                                                                                    ["relu2_2", "relu3_3"])
    for text, message in [("losses.depth.weight", "expected KEY.PATH=V1,V2"), ("losses.tv.weight=1,,2", "empty value"),
                          ("losses.tv.weight=1,1.0", "are the same value")]:
        with pytest.raises(ConfigError, match=message):
            parse_vary(text)


def test_grid_expansion_counts_and_names(recipe_file, tmp_path):
    grid = expand_grid(recipe_file, ["losses.style.weight=10,100", "losses.tv.weight=1e-6,1e-5,0"],
                       without_each=["tv", "content"], seeds=2, directory=tmp_path / "grid")
    assert len(grid.runs) == 2 * 3 * (1 + 2) * 2 - 2 * 2 * 2  # without-tv makes tv.weight irrelevant: merged
    assert len(grid.merged) == 8
    names = [r.name for r in grid.runs]
    assert len(set(names)) == len(names)
    assert "tiny-seed=0-style.weight=10-tv.weight=1e-06" in names
    assert "tiny-without-content-seed=1-style.weight=100-tv.weight=0" in names
    run = next(r for r in grid.runs if r.name == "tiny-without-content-seed=1-style.weight=100-tv.weight=0")
    assert sorted(run.config["losses"]) == ["style", "tv"] and run.config["schedule"]["seed"] == 1
    assert run.label == "style.weight=100; tv.weight=0; without content; seed 1"
    again = expand_grid(recipe_file, ["losses.style.weight=10,100", "losses.tv.weight=1e-6,1e-5,0"],
                        without_each=["tv", "content"], seeds=2, directory=tmp_path / "grid")
    assert [r.name for r in again.runs] == names  # deterministic: a re-launch finds the same folders
    assert len(expand_grid(recipe_file, ["losses.style.weight=1,2,3"]).runs) == 3
    default = expand_grid(recipe_file, ["losses.style.weight=1,2"], without_each=["tv"])
    assert default.directory == (tmp_path / "runs" / "tiny-ablate-style.weight-without-each-tv").resolve()


def test_grid_errors_name_key_and_allowed_values(recipe_file):
    with pytest.raises(ConfigError, match=r"(?s)--vary losses.style.reduction: value 'median'.*losses.style.reduction: "
                                          r"Input should be 'sum' or 'mean'"):
        expand_grid(recipe_file, ["losses.style.reduction=sum,median"])
    with pytest.raises(ConfigError, match=r"schedule.iteratons: unknown key; allowed keys: batch_size, iterations"):
        expand_grid(recipe_file, ["schedule.iteratons=1,2"])
    with pytest.raises(ConfigError, match=r"unknown loss term 'dpth'"):
        expand_grid(recipe_file, ["losses.dpth.weight=1,2"])
    with pytest.raises(ConfigError, match=r"unknown loss term 'depth'; this recipe's terms are: content, style, tv"):
        expand_grid(recipe_file, without_each=["depth"])
    with pytest.raises(ConfigError, match="given twice"):
        expand_grid(recipe_file, ["losses.tv.weight=1", "losses.tv.weight=2"])
    with pytest.raises(ConfigError, match="use one of them"):
        expand_grid(recipe_file, ["schedule.seed=1,2"], seeds=2)


def test_dry_run_shows_plan_with_estimate_and_runs_nothing(recipe_file, tmp_path):
    out = tmp_path / "grid"
    result = CliRunner().invoke(app, ["ablate", str(recipe_file), "--vary", "losses.style.weight=10,100",
                                      "--without-each", "tv", "-o", str(out), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "4 runs = 2 style.weight × 2 term sets (all, without tv): 4 to start" in result.output
    assert "estimated time:" in result.output and "ms/step" in result.output
    assert "tiny-without-tv-style.weight=100" in result.output
    assert not out.exists()


# -- running grids -------------------------------------------------------------

def test_interrupted_grid_resumes_and_summarizes(recipe_file, tmp_path, monkeypatch):
    """Phase 1 runs part of the grid and is interrupted; phase 2 (the full grid) runs only what is missing."""
    out = tmp_path / "grid"
    original = Trainer.train_step

    def interrupt(self, images):  # Ctrl-C during step 3 of the second run
        if self.step == 2 and "without-tv" in self.run_dir.name:
            raise KeyboardInterrupt
        return original(self, images)

    monkeypatch.setattr(Trainer, "train_step", interrupt)
    first = expand_grid(recipe_file, ["losses.style.weight=10"], without_each=["tv"], directory=out)
    with pytest.raises(KeyboardInterrupt):
        ablate(first, console=quiet(), show_progress=False, calibrate_fn=no_calibration)
    monkeypatch.setattr(Trainer, "train_step", original)

    grid = expand_grid(recipe_file, ["losses.style.weight=10,100"], without_each=["tv"], directory=out)
    kinds = {a.run.name: a.kind for a in plan_actions(grid)}
    assert kinds == {"tiny-style.weight=10": "skip", "tiny-without-tv-style.weight=10": "resume",
                     "tiny-style.weight=100": "start", "tiny-without-tv-style.weight=100": "start"}
    console = quiet()
    outcomes = ablate(grid, console=console, show_progress=False, calibrate_fn=no_calibration, contact_count=2)
    assert sorted(o.name for o in outcomes) == ["tiny-style.weight=100", "tiny-without-tv-style.weight=10",
                                               "tiny-without-tv-style.weight=100"]
    assert all(o.state == "finished" for o in outcomes)
    resumed = out / "tiny-without-tv-style.weight=10"
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    status = json.loads((resumed / "status.json").read_text())
    assert status["state"] == "finished" and isinstance(status["pid"], int) and status["host"]

    for name in ("summary.md", "summary.csv", "contact_sheet.png", "tradeoff.png", "grid.json"):
        assert (out / name).is_file(), name
    summary = (out / "summary.md").read_text()
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 4
    for run in grid.runs:
        assert f"| {run.name} |" in summary
    by_name = {r["run"]: r for r in rows}
    assert by_name["tiny-without-tv-style.weight=100"]["tv"] == ""  # dropped term: no value
    assert float(by_name["tiny-style.weight=100"]["tv"]) > 0 and by_name["tiny-style.weight=100"]["state"] == "finished"
    text = console.export_text()
    assert "final unweighted losses" in text and "content" in text
    from PIL import Image

    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height > 5 * 100  # a content row plus one row per run

    # a third launch runs nothing, and evaluation metrics appear as columns once they exist
    (out / "tiny-style.weight=10" / "eval").mkdir()
    (out / "tiny-style.weight=10" / "eval" / "metrics.json").write_text(json.dumps({"summary": {"ssim": 0.5}}))
    assert ablate(grid, console=quiet(), show_progress=False, calibrate_fn=no_calibration, contact_count=2) == []
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["eval.ssim"] for r in rows] == ["0.5", "", "", ""]
    assert "eval ssim" in (out / "summary.md").read_text()


def test_changed_config_is_refused_unless_replaced(recipe_file, tmp_path):
    out = tmp_path / "grid"
    raw = yaml.safe_load(recipe_file.read_text())
    recipe_file.write_text(yaml.safe_dump({**raw, "schedule": {**raw["schedule"], "iterations": 2}}))
    grid = expand_grid(recipe_file, ["losses.style.weight=10"], directory=out)
    ablate(grid, console=quiet(), show_progress=False, estimate=False)
    # the recipe file edited between launches: the same run name, another config
    recipe_file.write_text(yaml.safe_dump({**raw, "schedule": {**raw["schedule"], "iterations": 3}}))
    changed = expand_grid(recipe_file, ["losses.style.weight=10"], directory=out)
    assert plan_actions(changed)[0].kind == "conflict"
    with pytest.raises(ConfigError, match=r"different config.*schedule.iterations.*--replace"):
        ablate(changed, console=quiet(), show_progress=False, estimate=False)
    ablate(changed, console=quiet(), show_progress=False, estimate=False, replace=True)
    assert json.loads((out / "tiny-style.weight=10" / "status.json").read_text())["step"] == 3
    assert len(list((out / ".replaced").iterdir())) == 1


def test_editing_a_preset_the_runs_did_not_use_keeps_them_finished(recipe_file, tmp_path):
    """A recipe's presets are a menu: adding or changing one (here, for another painting) changes no finished run."""
    out = tmp_path / "grid"
    raw = yaml.safe_load(recipe_file.read_text())
    recipe_file.write_text(yaml.safe_dump({**raw, "schedule": {**raw["schedule"], "iterations": 2}}))
    ablate(expand_grid(recipe_file, ["losses.style.weight=10"], directory=out), console=quiet(),
           show_progress=False, estimate=False)
    raw = yaml.safe_load(recipe_file.read_text())
    recipe_file.write_text(yaml.safe_dump({**raw, "presets": {"other": {"losses.tv.weight": 0.5}}}))
    assert [a.kind for a in plan_actions(expand_grid(recipe_file, ["losses.style.weight=10"], directory=out))] == ["skip"]
    # a change the run would feel is still caught
    recipe_file.write_text(yaml.safe_dump({**raw, "losses": {**raw["losses"], "tv": {"weight": 0.5}}}))
    assert [a.kind for a in plan_actions(expand_grid(recipe_file, ["losses.style.weight=10"], directory=out))] == ["conflict"]


def test_parallel_commands_and_gpu_assignment(recipe_file, tmp_path, monkeypatch):
    from stylekit.ablate import Action, train_command, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]  # children get one each, round-robin over job slots
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    grid = expand_grid(recipe_file, ["losses.style.weight=10"], without_each=["tv"], overrides=["schedule.iterations=2"],
                       directory=tmp_path / "grid")
    run = grid.runs[1]
    cmd = train_command(grid, Action(run, "start"), tmp_path / "grid" / run.name)
    assert cmd[1:4] == ["-m", "stylekit", "train"] and "--run-dir" in cmd and cmd[-1] == "--no-progress"
    assert cmd[cmd.index("--without") + 1] == "tv"
    assert [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"] == ["schedule.iterations=2", "losses.style.weight=10"]
    cmd = train_command(grid, Action(run, "resume"), tmp_path / "grid" / run.name)
    assert cmd[4:6] == ["--resume", str(tmp_path / "grid" / run.name)] and "--set" not in cmd


def test_parallel_jobs_run_subprocesses(recipe_file, tmp_path):
    """--jobs 2: two `python -m stylekit train` processes at once (random-weight tiny recipe, offline)."""
    out = tmp_path / "grid"
    result = CliRunner().invoke(app, ["ablate", str(recipe_file), "--vary", "losses.tv.weight=1e-6,1e-5",
                                      "--set", "schedule.iterations=2", "-o", str(out), "--jobs", "2",
                                      "--no-estimate"], env={"COLUMNS": "200", "STYLEKIT_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    for name in ("tiny-iterations=2-tv.weight=1e-06", "tiny-iterations=2-tv.weight=1e-05"):  # as train names them
        assert json.loads((out / name / "status.json").read_text())["state"] == "finished"
        assert (out / "logs" / f"{name}.log").is_file()
        info = json.loads((out / name / "run.json").read_text())
        assert info["overrides"][-1].startswith("losses.tv.weight=") and "torch" in info["environment"]
        assert info["display_name"] == name  # `stylekit train` named the run as the grid did
    for name in ("summary.md", "summary.csv", "contact_sheet.png", "tradeoff.png"):
        assert (out / name).is_file(), name


def test_train_and_ablate_name_a_run_alike(recipe_file, tmp_path):
    """The same --set's and --without give the same name in both; logging cadence is in neither."""
    common = ["schedule.iterations=1", "log.every=1", "log.checkpoint_every=1"]
    args = ["train", str(recipe_file), "--without", "tv", "--set", "losses.style.weight=10", "--no-progress"]
    result = CliRunner().invoke(app, [*args, *[a for s in common for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    (trained,) = [p.name for p in (tmp_path / "runs").iterdir()]
    grid = expand_grid(recipe_file, ["losses.style.weight=10,100"], without_each=["tv"], overrides=common,
                       directory=tmp_path / "grid")
    names = {r.label: r.name for r in grid.runs}
    assert trained == names["style.weight=10; without tv"] == "tiny-without-tv-iterations=1-style.weight=10"
    assert names["style.weight=100"] == "tiny-iterations=1-style.weight=100"


def test_ablate_needs_the_jsonl_logger(recipe_file):
    with pytest.raises(ConfigError, match=r"summarizes runs from their metrics.jsonl, so keep jsonl"):
        expand_grid(recipe_file, ["losses.style.weight=10"], overrides=["log.loggers=[tensorboard]"])
