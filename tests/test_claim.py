"""Arms × seeds in `stylekit ablate`, and their grouped evaluation in `stylekit evaluate`: the groups, the
hierarchical CIs, the trade-off figure and the frontier verdict, end to end on tiny models; and the clear
errors of bad group input."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from stylekit.ablate import expand_grid, parse_arm
from stylekit.cli import app
from stylekit.errors import ConfigError
from stylekit.evaluate.groups import Group, groups_from_grid, merge_groups, parse_group
from stylekit.evaluate.runner import EvaluationError
from stylekit.testing import PLUGIN, make_images, tiny_recipe


@pytest.fixture
def recipe_file(tmp_path):
    """Two training steps on the tiny VGG: a run takes about a second."""
    raw = tiny_recipe(tmp_path, plugins=[PLUGIN], backbone={"name": "tiny_vgg", "options": {}},
                      schedule={"iterations": 2}, log={"every": 1, "sample_every": 100, "checkpoint_every": 2,
                                                        "num_samples": 1})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def depth_file(tmp_path):
    """A TorchScript depth judge with a known answer (blurred luma): the real ones need downloaded weights."""
    from test_evaluate import LumaDepth

    path = tmp_path / "luma_depth.pt"
    torch.jit.script(LumaDepth()).save(str(path))
    return path


# -- arms in ablate ------------------------------------------------------------------------------------------------
def test_arm_specs_parse_and_bad_ones_say_what_to_write():
    arm = parse_arm("johnson: without=depth; losses.content.weight=1,2,4; seeds=3")
    assert arm.name == "johnson" and arm.without == ("depth",) and arm.seeds == 3
    assert arm.vary[0].key == "losses.content.weight" and arm.vary[0].texts == ("1", "2", "4")
    for text, message in [("no colon", "expected NAME: KEY=V1,V2"), ("a/b: seeds=2", "without '/'"),
                          ("a: seeds=0", "seeds='0'"), ("a: losses.x.weight", "expected KEY.PATH=V1,V2"),
                          ("a: schedule.seed=1,2", "no schedule.seed")]:
        with pytest.raises(ConfigError, match=message):
            parse_arm(text)


def test_arms_expand_to_their_own_settings_and_seeds(recipe_file):
    grid = expand_grid(recipe_file, seeds=2, arms=["plain: without=tv; losses.content.weight=0.5,2",
                                                  "smooth: losses.tv.weight=0.01; seeds=3"])
    plain = [r for r in grid.runs if r.arm == "plain"]
    smooth = [r for r in grid.runs if r.arm == "smooth"]
    assert len(plain) == 4 and len(smooth) == 3 and grid.seeds == [0, 1, 2]
    assert {r.setting for r in plain} == {"content.weight=0.5", "content.weight=2"}  # the arm's terms and the
    assert {r.setting for r in smooth} == {"tv.weight=0.01"}  # seed are not part of the setting
    assert all("tv" not in r.config["losses"] for r in plain) and all(r.without == ("tv",) for r in plain)
    assert sorted(r.seed for r in smooth) == [0, 1, 2]
    assert len({r.name for r in grid.runs}) == 7  # named as `stylekit train` would name them, each its own folder
    twice = expand_grid(recipe_file, arms=["d: losses.tv.weight=0.01; seeds=3", "d: losses.tv.weight=0.1,1"])
    assert [(r.setting, r.seed) for r in twice.runs] == [("tv.weight=0.01", 0), ("tv.weight=0.01", 1),
                                                         ("tv.weight=0.01", 2), ("tv.weight=0.1", None),
                                                         ("tv.weight=1", None)]  # one arm, three seeds at one weight
    with pytest.raises(ConfigError, match="do not combine"):
        expand_grid(recipe_file, without_each=["tv"], arms=["a: seeds=2"])
    with pytest.raises(ConfigError, match="unknown loss term 'dpth'"):
        expand_grid(recipe_file, arms=["a: without=dpth"])
    with pytest.raises(ConfigError, match="--arm a: losses.tv.weight: value 'x'"):
        expand_grid(recipe_file, arms=["a: losses.tv.weight=x"])


# -- groups --------------------------------------------------------------------------------------------------------
def test_group_specs_globs_merging_and_errors(tmp_path):
    for name in ("run-s1", "run-s2", "odd=1,2"):
        (tmp_path / name).mkdir()
    group = parse_group(f"johnson/cw2={tmp_path}/run-s*")
    assert (group.arm, group.config, group.name) == ("johnson", "cw2", "johnson/cw2")
    assert [p.rsplit("/", 1)[-1] for p in group.paths] == ["run-s1", "run-s2"]
    assert parse_group(f"odd={tmp_path}/odd=1,2").paths == [f"{tmp_path}/odd=1,2"]  # a path with ',' stays whole
    merged = merge_groups([parse_group(f"a={tmp_path}/run-s1"), parse_group(f"a={tmp_path}/run-s2")])
    assert len(merged) == 1 and len(merged[0].paths) == 2
    with pytest.raises(EvaluationError, match="in two groups"):
        merge_groups([parse_group(f"a={tmp_path}/run-s1"), parse_group(f"b={tmp_path}/run-s1")])
    with pytest.raises(EvaluationError, match="matches no file"):
        parse_group(f"a={tmp_path}/nothing-*")
    with pytest.raises(EvaluationError, match="expected ARM=RUN"):
        parse_group("just-a-path")
    with pytest.raises(EvaluationError, match="no grid.json"):
        groups_from_grid(tmp_path)


def test_grids_written_before_arms_group_by_their_label_minus_the_seed():
    from stylekit.evaluate.groups import _setting

    assert _setting({"label": "style.weight=100; without tv; seed 1"}) == "style.weight=100; without tv"
    assert _setting({"label": "seed 2"}) == "" and _setting({"label": "baseline"}) == "baseline"
    assert _setting({"label": "plain; seed 0", "setting": "content.weight=2"}) == "content.weight=2"


def test_bad_group_input_is_one_clear_message_with_exit_code_2(tmp_path):
    make_images(tmp_path / "content", count=1)
    runner = CliRunner()
    cases = [(["--group", "nonsense"], "expected ARM=RUN"),
             (["--groups-from", str(tmp_path)], "no grid.json"),
             (["m", "--group", f"a={tmp_path}/content"], "either as arguments or in groups")]
    for args, message in cases:
        result = runner.invoke(app, ["evaluate", *args, "--content", str(tmp_path / "content"), "-o",
                                     str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


# -- end to end ------------------------------------------------------------------------------------------------------
def test_ablate_arms_then_one_grouped_evaluation(recipe_file, depth_file, tmp_path):
    runner = CliRunner()
    grid = tmp_path / "claim"
    result = runner.invoke(app, ["ablate", str(recipe_file), "-o", str(grid), "--no-estimate",
                                 "--arm", "plain: losses.content.weight=0.5,4; seeds=2",
                                 "--arm", "smooth: losses.tv.weight=0.01; seeds=2",
                                 "--arm", "single: losses.tv.weight=0.001; seeds=1"])
    assert result.exit_code == 0, result.output
    plan = json.loads((grid / "grid.json").read_text())
    assert [r["arm"] for r in plan["runs"]].count("plain") == 4 and plan["arms"][0]["name"] == "plain"
    groups, left_out = groups_from_grid(grid)
    assert [g.name for g in groups] == ["plain/content.weight=0.5", "plain/content.weight=4",
                                        "smooth/tv.weight=0.01", "single/tv.weight=0.001"]
    assert [len(g.paths) for g in groups] == [2, 2, 2, 1] and not left_out

    make_images(tmp_path / "eval_content", count=4, size=(40, 32), seed=5)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--groups-from", str(grid), "--content", str(tmp_path / "eval_content"),
                                 "--metrics", "depth,texture_gabor,ssim", "--depth-network", "torchscript",
                                 "--depth-option", f"weights={depth_file}", "--depth-option", "input_size=null",
                                 "--bootstrap", "200", "--plugin", PLUGIN, "--no-progress", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    analysis = data["groups"]
    assert [g["name"] for g in analysis["groups"]] == [g.name for g in groups]
    assert analysis["baseline"] == "plain/content.weight=0.5"
    ordinal = analysis["summary"]["smooth/tv.weight=0.01"]["depth_ordinal"]
    assert ordinal["seeds"] == 2 and ordinal["n"] == 4 and ordinal["ci_low"] <= ordinal["mean"] <= ordinal["ci_high"]
    assert analysis["summary"]["single/tv.weight=0.001"]["ssim"]["seed_variation"] == "borrowed from every arm"
    rows = [r for r in analysis["comparison"] if r["metric"] == "depth_ordinal"]
    assert [r["group"] for r in rows] == [g.name for g in groups[1:]]
    trade = analysis["tradeoff"]
    assert trade["x"] == "texture_gabor" and trade["y"] == "depth_ordinal" and trade["reference_arm"] == "plain"
    assert trade["x_independent"] and len(trade["runs"]) == 7 and len(trade["configs"]) == 4
    assert {g["group"] for g in trade["gaps"]} == {"smooth/tv.weight=0.01", "single/tv.weight=0.001"}
    assert all(g["verdict"] in ("above", "below", "not shown", "outside the range") for g in trade["gaps"])
    assert trade["sentence"].count("arm") >= 2 and "plain arm" in trade["sentence"]
    report = (out / "report.md").read_text()
    assert "![trade-off](tradeoff.png)" in report and "## Verdict at equal style" in report
    assert trade["sentence"] in report and (out / "tradeoff.png").stat().st_size > 10_000
    assert "tradeoff.png" in (out / "report.html").read_text()
    assert trade["sentence"].split(":")[0] in " ".join(result.output.split())  # the console ends with the verdict
