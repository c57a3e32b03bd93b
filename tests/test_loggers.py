"""Loggers as a plugin kind: chosen in the recipe, jsonl and tensorboard write what they should, resumes drop
what is trained again, unknown names and missing packages are clear errors, a third-party logger receives all."""

import importlib.util
import json
import sys

import pytest
import yaml
from typer.testing import CliRunner

from stylekit.cli import app
from stylekit.config import validate_recipe
from stylekit.errors import ConfigError, StylekitError
from stylekit.loggers import JsonlLogger, StepMetrics, TensorBoardLogger
from stylekit.runs import RunDir
from stylekit.testing import check_logger, tiny_recipe
from stylekit.trainer import Trainer


def event_data(folder):
    """TensorBoard's own reader over a run's event files: (scalars tag → [(step, value)], image tags, text)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags["scalars"]}
    images = {tag: [(e.step, e.width, e.height) for e in events.Images(tag)] for tag in tags["images"]}
    texts = {tag: [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag)] for tag in tags["tensors"]}
    return scalars, images, texts


def metrics(step, style=2.0):
    return StepMetrics(step=step, time=0.5 * step, loss=1000 * style + 1.0,
                       terms={"style": {"raw": style, "weighted": 1000 * style}, "content": {"raw": 1.0, "weighted": 1.0}},
                       lr=1e-3, steps_per_second=4.0)


def test_recipe_loggers_jsonl_and_tensorboard_write_what_they_should(tmp_path):
    pytest.importorskip("tensorboard")
    raw = tiny_recipe(tmp_path, log={"loggers": ["jsonl", "tensorboard"]})
    Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False).fit()
    run = RunDir(tmp_path / "run")
    rows = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(list(r) == ["step", "time", "loss", "terms", "lr"] for r in rows)  # the format runs/ablate read

    scalars, images, texts = event_data(run.logger_dir("tensorboard"))
    for term in ("content", "style", "tv"):
        assert [s for s, _ in scalars[f"raw/{term}"]] == [2, 4, 6]
        assert [v for _, v in scalars[f"raw/{term}"]] == pytest.approx([r["terms"][term]["raw"] for r in rows],
                                                                        rel=1e-5)
        assert [v for _, v in scalars[f"weighted/{term}"]] == pytest.approx(
            [r["terms"][term]["weighted"] for r in rows], rel=1e-5)
    assert [v for _, v in scalars["loss"]] == pytest.approx([r["loss"] for r in rows], rel=1e-5)
    assert [v for _, v in scalars["lr"]] == pytest.approx([1e-3] * 3)
    assert all(v > 0 for _, v in scalars["steps_per_second"])
    assert [(step, height > 32) for step, _, height in images["samples"]] == [(3, True), (6, True)]  # the grids
    (recipe_text,) = texts["recipe/text_summary"]
    assert yaml.safe_load("\n".join(line[4:] for line in recipe_text.splitlines()))["name"] == "tiny"


def test_default_is_jsonl_alone(tmp_path):
    recipe = validate_recipe(tiny_recipe(tmp_path))
    assert recipe.log.loggers == ["jsonl"]
    trainer = Trainer(recipe, tmp_path / "run", show_progress=False)
    trainer.build()
    assert [type(logger) for logger in trainer.loggers] == [JsonlLogger]


def test_resumes_drop_what_is_logged_again(tmp_path):
    """Resumed at step 2, each logger forgets steps after 2: they are trained (and logged) again."""
    pytest.importorskip("tensorboard")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for resumed_at, steps in ((None, [1, 2, 3, 4]), (2, [3])):
        loggers = [JsonlLogger(), TensorBoardLogger({"flush_secs": 1})]
        for logger in loggers:
            logger.start(run, resumed_at)
            logger.log_recipe({"name": "x"})
            for step in steps:
                logger.log_metrics(metrics(step, style=float(step if resumed_at is None else 10 * step)))
            logger.finalize("finished")
    assert [(r["step"], r["terms"]["style"]["raw"]) for r in map(json.loads, run.metrics.read_text().splitlines())] \
        == [(1, 1.0), (2, 2.0), (3, 30.0)]
    scalars, _, _ = event_data(run.logger_dir("tensorboard"))
    assert scalars["raw/style"] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_unknown_logger_and_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"log.loggers: unknown logger 'tensorbord'; known logger names: jsonl, "
                                          r"tensorboard"):
        validate_recipe(tiny_recipe(tmp_path, log={"loggers": ["jsonl", "tensorbord"]}))
    with pytest.raises(ConfigError, match=r"log.logger_options.tensorboard.flush_sec: unknown key; allowed keys: "
                                          r"flush_secs"):
        validate_recipe(tiny_recipe(tmp_path, log={"loggers": ["tensorboard"],
                                                   "logger_options": {"tensorboard": {"flush_sec": 5}}}))
    with pytest.raises(ConfigError, match=r"log.logger_options.tensorboard: 'tensorboard' is not in log.loggers"):
        validate_recipe(tiny_recipe(tmp_path, log={"logger_options": {"tensorboard": {"flush_secs": 5}}}))
    recipe = validate_recipe(tiny_recipe(tmp_path, log={"loggers": ["jsonl", "tensorboard"]}))
    assert recipe.log.logger_options == {"tensorboard": {"flush_secs": 10}}  # defaults filled, as config.yaml shows


def test_tensorboard_without_its_package_says_how_to_install(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else find_spec(name, *a))
    with pytest.raises(StylekitError, match=r"pip install 'stylekit\[tensorboard\]'"):
        TensorBoardLogger()
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path, log={"loggers": ["jsonl", "tensorboard"]})))
    result = CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code != 0 and "stylekit[tensorboard]" in str(result.exception)
    assert not RunDir(tmp_path / "run").holds_run()  # stopped before the run began


PLUGIN = '''
import stylekit

RECEIVED = []


class Recorder(stylekit.Logger):
    """Notes everything it is given."""

    name = "recorder"

    def start(self, run, resumed_at):
        RECEIVED.append(("start", run.name, resumed_at))

    def log_recipe(self, recipe):
        RECEIVED.append(("recipe", recipe["name"]))

    def log_metrics(self, metrics):
        RECEIVED.append(("metrics", metrics.step, sorted(metrics.scalars())))

    def log_image(self, tag, image, step):
        RECEIVED.append(("image", tag, step, image.size))

    def finalize(self, status):
        RECEIVED.append(("finalize", status))


@stylekit.hookimpl
def stylekit_loggers():
    return [Recorder]
'''


def test_a_plugin_logger_receives_metrics_images_recipe_and_the_end(tmp_path):
    (tmp_path / "recorder.py").write_text(PLUGIN)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path, plugins=[str(tmp_path / "recorder.py")],
                                                 schedule={"iterations": 4},
                                                 log={"every": 2, "sample_every": 4, "checkpoint_every": 4,
                                                      "loggers": ["jsonl", "recorder"]})))
    listing = CliRunner().invoke(app, ["plugins", "--plugin", str(tmp_path / "recorder.py")], env={"COLUMNS": "250"})
    assert "logger" in listing.output and "recorder" in listing.output  # listed like any component
    result = CliRunner().invoke(app, ["train", str(recipe), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    module = next(m for name, m in sys.modules.items() if name.startswith("stylekit_user_plugin_recorder"))
    received = module.RECEIVED
    assert received[:2] == [("start", "run", None), ("recipe", "tiny")]
    assert [r[1] for r in received if r[0] == "metrics"] == [2, 4]
    assert received[2][2] == ["loss", "lr", "raw/content", "raw/style", "raw/tv", "steps_per_second",
                              "weighted/content", "weighted/style", "weighted/tv"]
    assert [r[:3] for r in received if r[0] == "image"] == [("image", "samples", 4)]
    assert received[-1] == ("finalize", "finished")
    assert (tmp_path / "run" / "metrics.jsonl").is_file()  # jsonl alongside


UNREACHABLE = '''
import stylekit

FINALIZED = []


class Unreachable(stylekit.Logger):
    """A tracker whose server cannot be reached."""

    name = "unreachable"

    def start(self, run, resumed_at):
        raise ConnectionError("tracking server unreachable")

    def log_metrics(self, metrics):
        pass

    def finalize(self, status):
        FINALIZED.append(status)


@stylekit.hookimpl
def stylekit_loggers():
    return [Unreachable]
'''


def test_a_logger_that_cannot_start_fails_the_run_cleanly(tmp_path, monkeypatch):
    (tmp_path / "unreachable.py").write_text(UNREACHABLE)
    closed = []
    monkeypatch.setattr(JsonlLogger, "finalize", lambda self, status: closed.append(status))
    raw = tiny_recipe(tmp_path, plugins=[str(tmp_path / "unreachable.py")], log={"loggers": ["jsonl", "unreachable"]})
    with pytest.raises(ConnectionError):
        Trainer(validate_recipe(raw), tmp_path / "run", show_progress=False).fit()
    status = RunDir(tmp_path / "run").read_status()
    assert status["state"] == "failed" and "tracking server unreachable" in status["reason"]
    assert closed == ["failed"]  # the logger that had started was closed
    module = next(m for name, m in sys.modules.items() if name.startswith("stylekit_user_plugin_unreachable"))
    assert module.FINALIZED == []  # the one that never started is not asked to close


def test_check_logger_passes_the_built_ins(tmp_path):
    check = check_logger(JsonlLogger, root=tmp_path / "a")
    rows = [json.loads(line) for line in (check.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]  # step 3 once: dropped on resuming at 2, logged again
    if importlib.util.find_spec("tensorboard") is not None:
        check = check_logger(TensorBoardLogger, {"flush_secs": 1}, root=tmp_path / "b")
        scalars, images, _ = event_data(check.run_dir / "tensorboard")
        assert [s for s, _ in scalars["loss"]] == [1, 2, 3] and [s for s, *_ in images["samples"]] == [2, 3]


def test_check_logger_catches_a_logger_that_breaks(tmp_path):
    import stylekit

    class Broken(stylekit.Logger):
        """Fails on images."""

        name = "broken"

        def log_metrics(self, metrics):
            pass

        def log_image(self, tag, image, step):
            raise RuntimeError("cannot encode the image")

    with pytest.raises(RuntimeError, match="cannot encode"):
        check_logger(Broken, root=tmp_path)

    class Misnamed(Broken):
        """A name that would be the run's checkpoints folder."""

        name = "checkpoints"

    with pytest.raises(StylekitError, match="cannot name a folder"):
        check_logger(Misnamed, root=tmp_path)
