"""The run folder: its layout round trip, one writer at a time, default names, and run folders as data."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml
from typer.testing import CliRunner

from stylekit import runlock
from stylekit.checkpoint import load_model, save_model
from stylekit.cli import app
from stylekit.config import dump_recipe, validate_recipe
from stylekit.errors import StylekitError
from stylekit.models.transformer import TransformerNet
from stylekit.runs import RunDir, RunLockedError, RunPathError, read_run, untrusted_plugins
from stylekit.testing import make_images, tiny_recipe
from stylekit.trainer import Trainer


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_checkpoint(folder, channels=8):
    """A checkpoint folder with a real (tiny) model file, as load_model reads it."""
    folder.mkdir(parents=True)
    save_model(TransformerNet({"channels": channels, "residual_blocks": 1}), folder / "model.safetensors")
    return folder


# -- layout ------------------------------------------------------------------------

def test_layout_round_trip(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.is_empty() and not run.holds_run() and run.latest_checkpoint() is None
    with run:
        run.start("name: tiny\nschedule: {iterations: 4}\n", "tiny", {"overrides": ["losses.style.weight=2"],
                                                                   "environment": {"torch": "2.x"}})
        run.write_status("running", 2, 4)
        with run.open_metrics() as fh:
            for step in (1, 2, 3):
                fh.write(json.dumps({"step": step, "terms": {"style": {"raw": step / 10, "weighted": step}}}) + "\n")
        run.drop_metrics_after(2)
        for step in (2, 4):
            fake_checkpoint(run.checkpoint_dir(step))
        run.set_latest(run.checkpoint_dir(2))
    assert run.holds_run() and not run.is_empty()
    assert run.checkpoint_dir(4).name == "step_0000004" and RunDir.step_of(run.checkpoint_dir(4)) == 4
    assert RunDir.step_of(run.sample_file(12)) == 12 and run.sample_file(12).parent == run.samples
    assert run.latest_checkpoint() == run.checkpoint_dir(2)  # the pointer wins over the newest folder
    (run.checkpoints / "latest").unlink()
    assert run.latest_checkpoint() == run.checkpoint_dir(4)
    assert RunDir.containing(run.checkpoint_dir(4) / "model.safetensors").path == run.path
    assert RunDir.containing(tmp_path) is None

    record = read_run(run.path)
    assert (record.recipe, record.state, record.step, record.iterations) == ("tiny", "running", 2, 4)
    assert record.final == {"style": 0.2} and record.changes == "style.weight=2"
    assert record.info["command"] and record.info["environment"]["torch"] == "2.x"
    assert run.read_status()["pid"] == os.getpid()


# -- one writer per run folder -------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys
    from stylekit.runs import RunDir
    RunDir(sys.argv[1]).acquire()
    print("locked", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def held_elsewhere(tmp_path):
    """A run folder whose writer lock another process holds; yields (folder, that process)."""
    folder = tmp_path / "busy"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield folder, proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_second_writer_is_refused_naming_the_running_pid(held_elsewhere, tmp_path):
    folder, proc = held_elsewhere
    with pytest.raises(RunLockedError, match=rf"being written by process {proc.pid}\b.*--resume"):
        RunDir(folder).acquire()
    assert RunDir(folder).writer().pid == proc.pid
    # the same through the CLI: a second `train --run-dir` into it, and `--resume` of it, exit non-zero
    raw = tiny_recipe(tmp_path)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(folder), "--no-progress"])
    assert result.exit_code != 0 and isinstance(result.exception.original, RunLockedError)
    assert f"process {proc.pid}" in str(result.exception)
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["train", "--resume", str(folder), "--no-progress"])
    assert isinstance(result.exception.original, RunLockedError) and f"process {proc.pid}" in str(result.exception)


def test_lock_of_a_dead_writer_is_taken_over_and_released_on_exit(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    gone = dead_pid()
    run.lock_file.write_text(json.dumps({"pid": gone, "host": runlock.Holder.me().host, "started": "earlier"}))
    with run:
        assert run.stale_writer.pid == gone
        assert RunDir(run.path).writer().pid == os.getpid()
        with pytest.raises(RunLockedError, match=str(os.getpid())):  # another writer, even in this process
            RunDir(run.path).acquire()
    assert RunDir(run.path).writer() is None
    with RunDir(run.path) as again:
        assert again.stale_writer is None  # released cleanly: nothing left behind


def test_a_lock_file_linking_elsewhere_is_never_written_through(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.lock_file.symlink_to(victim)
    with pytest.raises(StylekitError, match=r"\.lock is a symbolic link"):
        run.acquire()
    assert victim.read_text() == "keep me" and run.writer() is None


def test_pid_file_fallback_without_flock(tmp_path, monkeypatch):
    """Where there is no flock (Windows), a live pid on this host holds the lock and a dead one does not."""
    monkeypatch.setattr(runlock, "fcntl", None)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    parent = os.getppid()
    me = runlock.Holder.me()
    run.lock_file.write_text(json.dumps({"pid": parent, "host": me.host, "started": "earlier",
                                         "process_start": runlock.process_start_ticks(parent)}))
    with pytest.raises(RunLockedError, match=rf"process {parent}\b"):
        run.acquire()
    run.lock_file.write_text(json.dumps({"pid": dead_pid(), "host": me.host, "started": "earlier"}))
    with run:
        assert run.stale_writer is not None and json.loads(run.lock_file.read_text())["pid"] == os.getpid()
    assert not run.lock_file.exists()


def test_default_names_never_reuse_a_folder_in_use(tmp_path):
    first = RunDir.create(tmp_path, "tiny")
    second = RunDir.create(tmp_path, "tiny")  # "tiny" is claimed (locked, still empty)
    assert (first.name, second.name) == ("tiny", "tiny-2")
    first.start("name: tiny\n", "tiny", {})
    first.release()
    third = RunDir.create(tmp_path, "tiny")  # "tiny" holds a run, "tiny-2" is being written
    assert third.name == "tiny-3"
    second.release()
    reused = RunDir.create(tmp_path, "tiny")
    assert reused.name == "tiny-2"  # empty and free again: reused
    (tmp_path / "tiny-4").write_text("a file")
    third.start("name: tiny\n", "tiny", {})
    third.release()
    assert RunDir.create(tmp_path, "tiny").name == "tiny-5"
    reused.release()


def test_a_new_run_never_writes_into_a_finished_one(tmp_path):
    raw = tiny_recipe(tmp_path)
    run = RunDir(tmp_path / "done")
    run.start(yaml.safe_dump(raw), "tiny", {})
    run.write_status("finished", 6, 6)
    with pytest.raises(StylekitError, match=r"already holds a run \(finished\).*--resume"):
        Trainer(validate_recipe(raw), run.path, show_progress=False).fit()
    assert RunDir(run.path).writer() is None  # the refusal released the lock


# -- run folders are data ----------------------------------------------------------------

def test_checkpoint_links_leaving_the_run_are_refused(tmp_path):
    outside = fake_checkpoint(tmp_path / "elsewhere" / "step_0000009")
    run = RunDir(tmp_path / "run")
    inside = fake_checkpoint(run.checkpoint_dir(2))
    run.start("name: tiny\n", "tiny", {})
    latest = run.checkpoints / "latest"
    latest.symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunPathError, match=r"checkpoints/latest points outside the run folder"):
        load_model(run.path)
    image = make_images(tmp_path / "in", 1)[0]
    result = CliRunner().invoke(app, ["stylize", str(run.path), str(image), "-o", str(tmp_path / "o")])
    assert result.exit_code != 0 and "points outside the run folder" in str(result.exception)
    latest.unlink()
    latest.write_text("../../elsewhere/step_0000009\n")  # a name that walks out
    with pytest.raises(RunPathError):
        run.latest_checkpoint()
    latest.unlink()
    latest.symlink_to(inside, target_is_directory=True)  # a link within the run is fine
    assert run.latest_checkpoint().name == "step_0000002"
    latest.unlink()
    (run.checkpoints / "step_0000010").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunPathError, match="step_0000010"):
        run.latest_checkpoint()
    (run.path / "metrics.jsonl").symlink_to(tmp_path / "elsewhere" / "m.jsonl")
    record = read_run(run.path)
    assert record.state == "refused" and "metrics.jsonl points outside" in record.reason


def test_untrusted_plugins(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "extra_mod.py").write_text("")
    given = str(tmp_path / "mine.py")
    plugins = ["stylekit.testing", str(run.path / "extra.py"), given, "extra_mod", "no_such_module_xyz"]
    assert untrusted_plugins(run, plugins, given=[given]) == [str(run.path / "extra.py")]
    monkeypatch.syspath_prepend(str(run.path))  # e.g. started from inside the run folder
    assert untrusted_plugins(run, plugins, given=[given]) == [str(run.path / "extra.py"), "extra_mod"]
    assert untrusted_plugins(run, plugins, given=[given, "extra_mod", str(run.path / "extra.py")]) == []


EXTRA_PLUGIN = textwrap.dedent("""
    from pathlib import Path
    import stylekit

    (Path(__file__).parent / "imported.txt").write_text("this plugin ran")


    @stylekit.hookimpl
    def stylekit_metrics():
        return []
""")


def test_resume_trusts_only_given_plugins_and_records_changes(tmp_path):
    raw = tiny_recipe(tmp_path, schedule={"iterations": 4}, log={"checkpoint_every": 2, "sample_every": 100})
    run = RunDir(tmp_path / "run")
    Trainer(validate_recipe(raw), run.path, show_progress=False).fit()
    config = yaml.safe_load(run.config.read_text())
    config["plugins"] = ["extra.py"]  # as a downloaded run folder might say, with the file beside it
    run.config.write_text(yaml.safe_dump(config))
    (run.path / "extra.py").write_text(EXTRA_PLUGIN)
    marker = run.path / "imported.txt"
    runner = CliRunner()

    result = runner.invoke(app, ["train", "--resume", str(run.path), "--set", "schedule.iterations=6"])
    assert result.exit_code != 0 and not marker.exists()
    message = str(result.exception)
    assert str((run.path / "extra.py").resolve()) in message and "--trust-run-plugins" in message

    result = runner.invoke(app, ["train", "--resume", str(run.path), "--trust-run-plugins", "--set",
                                 "model.channels=16", "--no-progress"])
    assert result.exit_code != 0 and "model.channels" in str(result.exception)  # weights have the old shape
    assert yaml.safe_load(run.config.read_text())["model"]["channels"] == 8

    result = runner.invoke(app, ["train", "--resume", str(run.path), "--trust-run-plugins", "--set",
                                 "schedule.iterations=6", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "this plugin ran"
    assert yaml.safe_load(run.config.read_text())["schedule"]["iterations"] == 6  # config.yaml says what ran
    resume = run.read_info()["resumes"][-1]
    assert resume["step"] == 4 and resume["overrides"] == ["schedule.iterations=6"]
    assert "schedule.iterations" in resume["changed"]
    assert run.read_status()["state"] == "finished" and run.read_status()["step"] == 6
    listing = runner.invoke(app, ["runs", str(tmp_path)], env={"COLUMNS": "250"})
    assert "resumed at step 4 with schedule.iterations=6" in listing.output
    for flag in (["--preset", "x"], [str(tmp_path / "tiny.yaml")]):
        result = runner.invoke(app, ["train", *flag, "--resume", str(run.path)])
        assert "cannot be given with it" in str(result.exception)


def test_resuming_a_run_from_before_a_new_recipe_field_records_no_change(tmp_path):
    """A recipe field added to stylekit since the run started, at its default, is not a change to the run."""
    from stylekit.session import resume_changes

    run = RunDir(tmp_path / "run")
    recipe = validate_recipe(tiny_recipe(tmp_path))
    current = yaml.safe_load(dump_recipe(recipe))
    older = {**current, "log": {k: v for k, v in current["log"].items() if k not in ("loggers", "logger_options")}}
    run.start(yaml.safe_dump(older), "tiny", {})
    assert resume_changes(run, recipe) == []
    changed = resume_changes(run, validate_recipe(tiny_recipe(tmp_path, log={"loggers": ["jsonl", "tensorboard"]})))
    assert "log.loggers" in changed and all(key.startswith("log.") for key in changed)
    with pytest.raises(StylekitError, match="model.channels would change the network"):
        resume_changes(run, validate_recipe(tiny_recipe(tmp_path, model={"channels": 4})))


# -- module boundaries ------------------------------------------------------------------

def _fresh_python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def test_bench_does_not_import_the_test_helpers(tmp_path):
    _fresh_python(f"import sys, pathlib; from stylekit.bench import bench_recipe; "
                  f"raw = bench_recipe(pathlib.Path({str(tmp_path)!r}), 32, 2); "
                  "assert pathlib.Path(raw['style']['images'][0]).is_file(); "
                  "assert 'stylekit.testing' not in sys.modules, 'bench imported stylekit.testing'")


def test_testing_helpers_do_not_import_the_trainer(tmp_path):
    _fresh_python(f"import sys, pathlib; from stylekit import testing; from stylekit.plugins import get_registry; "
                  f"testing.tiny_recipe(pathlib.Path({str(tmp_path)!r})); "
                  "testing.check_term(get_registry().get('loss', 'tv')); "
                  "assert 'stylekit.trainer' not in sys.modules, 'stylekit.testing imported the trainer'")
    import inspect
    import re

    import stylekit.testing

    assert not re.search(r"from \.train import|stylekit\.train import|import stylekit\.train",
                         inspect.getsource(stylekit.testing)), "no helper may reach for the trainer, lazily either"


def test_ablate_is_a_package_with_the_same_public_names():
    import stylekit.ablate as ablate
    from stylekit.ablate import execute, grid, pictures, plan, summary

    for name in ("ablate", "expand_grid", "parse_vary", "split_values", "plan_actions", "Calibration", "Action",
                 "train_command", "visible_gpus", "summarize"):
        assert hasattr(ablate, name), name
    assert ablate.expand_grid is grid.expand_grid and ablate.plan_actions is plan.plan_actions
    assert ablate.run_parallel is execute.run_parallel and ablate.summarize is summary.summarize
    assert ablate.tradeoff_plot is pictures.tradeoff_plot
