"""`stylekit runs`: listing run folders (status, progress, final losses) and comparing runs side by side."""

import json
import subprocess

import yaml
from typer.testing import CliRunner

from stylekit.cli import app
from stylekit.runs import config_diff, effective_state, find_runs, flatten, read_eval_metrics, read_run


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_run(root, name, state, step=4, iterations=4, reason="", pid=None, style_weight=1.0, terms=("content", "style"),
             overrides=()):
    """A run folder as the trainer leaves it (no training needed to test the readers)."""
    run = root / name
    run.mkdir(parents=True)
    config = {"name": "tiny", "losses": {t: {"weight": style_weight if t == "style" else 1.0} for t in terms},
              "schedule": {"iterations": iterations, "seed": 0}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "run.json").write_text(json.dumps({"name": name, "recipe": "tiny", "overrides": list(overrides),
                                              "without": [], "only": []}))
    status = {"state": state, "step": step, "iterations": iterations, "reason": reason}
    if pid is not None:
        status |= {"pid": pid}
    (run / "status.json").write_text(json.dumps(status))
    rows = [{"step": s, "loss": 1.0, "terms": {t: {"raw": 0.5 / s + (t == "style"), "weighted": 0.5} for t in terms}}
            for s in range(1, step + 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "ter')  # cut line
    return run


def test_status_of_dead_running_process_reads_as_interrupted():
    pid = dead_pid()
    assert effective_state({"state": "running", "step": 3, "pid": pid})[0] == "interrupted"
    import os

    assert effective_state({"state": "running", "pid": os.getpid()}) == ("running", "")
    assert effective_state({"state": "running"})[0] == "running"  # no pid recorded: cannot tell
    assert effective_state({"state": "running", "pid": pid, "host": "elsewhere"})[0] == "running"


def test_read_run_and_listing(tmp_path):
    fake_run(tmp_path / "runs", "a-finished", "finished", overrides=["losses.style.weight=2"])
    fake_run(tmp_path / "runs", "b-failed", "failed", step=2, reason="loss became non-finite at step 3 in term(s) style")
    fake_run(tmp_path / "runs" / "grid", "c-killed", "running", step=1, pid=dead_pid(), terms=("content",))
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert [p.name for p in find_runs(tmp_path / "runs")] == ["a-finished", "b-failed", "c-killed"]
    record = read_run(tmp_path / "runs" / "a-finished")
    assert record.final == {"content": 0.125, "style": 1.125} and record.step == 4 and record.iterations == 4
    assert record.changes == "style.weight=2"

    result = CliRunner().invoke(app, ["runs", str(tmp_path / "runs")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("a-finished", "finished", "style.weight=2", "4/4", "1.125", "b-failed",
                 "failed: loss became non-finite at step 3", "c-killed", "interrupted: process", "1/4"):
        assert text in out, text


def test_eval_metrics_are_read_in_several_shapes(tmp_path):
    run = fake_run(tmp_path, "r", "finished")
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps({"summary": {"ssim": 0.5, "depth_l1": 0.2}}))
    assert read_eval_metrics(run) == {"ssim": 0.5, "depth_l1": 0.2}
    (run / "eval" / "metrics.json").write_text(json.dumps(
        {"summary": {"other": {"ssim": {"mean": 0.1}}, "r": {"ssim": {"mean": 0.7, "ci_low": 0.6, "n": 3}}}}))
    assert read_eval_metrics(run) == {"ssim": 0.7}
    result = CliRunner().invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": "250"})
    assert "eval ssim" in result.output and "0.7" in result.output


def test_compare_shows_config_diff_and_metrics(tmp_path):
    a = fake_run(tmp_path, "base", "finished", style_weight=1.0, terms=("content", "style", "tv"))
    b = fake_run(tmp_path, "heavy", "finished", style_weight=10.0, terms=("content", "style"), step=3)
    diff = config_diff([yaml.safe_load((a / "config.yaml").read_text()), yaml.safe_load((b / "config.yaml").read_text())])
    assert set(diff) == {"losses.style.weight", "losses.tv.weight"}
    assert flatten({"a": {"b": [1, 2], "c": {}}}) == {"a.b": [1, 2], "a.c": {}}
    result = CliRunner().invoke(app, ["runs", "compare", str(a), str(b)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "losses.style.weight" in out and "10" in out and "(absent)" in out
    assert "schedule.iterations" not in out  # identical keys are not shown
    assert "3/4" in out and "4/4" in out
    result = CliRunner().invoke(app, ["runs", "compare", str(a)])
    assert result.exit_code != 0 and "two or more" in str(result.exception)
    result = CliRunner().invoke(app, ["runs", "compare", str(a), str(tmp_path / "nope")])
    assert "not a run directory" in str(result.exception)


def test_before_any_run_runs_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "No runs yet" in result.output and "stylekit train" in result.output
    (tmp_path / "runs").mkdir()
    assert "No runs under runs/ yet" in CliRunner().invoke(app, ["runs"]).output
    fake_run(tmp_path / "runs", "a", "finished")
    assert "1 run(s) under runs/" in CliRunner().invoke(app, ["runs"], env={"COLUMNS": "200"}).output
    missing = CliRunner().invoke(app, ["runs", "elsewhere"])
    assert missing.exit_code == 2 and "elsewhere is not a folder" in str(missing.exception)
