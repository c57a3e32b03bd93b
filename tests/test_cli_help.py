"""The CLI reads like click's: flags as flags, shell completion, install hints instead of tracebacks."""

from __future__ import annotations

import sys

import pytest
import typer
from typer.testing import CliRunner

from stylekit.cli import app
from stylekit.errors import StylekitError

ENV = {"COLUMNS": "200", "TERM": "dumb"}


def command_paths(command=None, prefix=()):
    command = command or typer.main.get_command(app)
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*prefix, name))


def test_every_help_shows_flags_as_flags_and_lists_by_element():
    paths = list(command_paths())
    assert ("demo",) in paths and ("plugins", "new") in paths
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env=ENV)
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        assert "<list[" not in result.output, (path, result.output)
    train = CliRunner().invoke(app, ["train", "--help"], env=ENV).output
    assert any(line.split()[1:3] == ["--set", "-s"] and "<str>" in line for line in train.splitlines())
    offline = next(line for line in train.splitlines() if "--offline" in line)
    assert offline.split()[1:3] == ["--offline", "Never"]  # no type between the flag and its help
    stylize = CliRunner().invoke(app, ["stylize", "--help"], env=ENV).output
    assert any("[MODEL] INPUTS..." in line and "<path>" in line for line in stylize.splitlines())


def test_shell_completion_is_available(monkeypatch):
    import typer.completion

    # typer asks shellingham which shell runs it (the process tree, not $SHELL): pin it, so the test does not
    # depend on how pytest was started
    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    shown = CliRunner().invoke(app, ["--show-completion"], prog_name="stylekit", env={**ENV, "SHELL": "/bin/bash"})
    assert shown.exit_code == 0 and "_STYLEKIT_COMPLETE=complete_bash" in shown.output
    assert "--install-completion" in CliRunner().invoke(app, ["--help"], env=ENV).output

    def complete(words: str, index: int) -> list[str]:
        env = {"_STYLEKIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(index)}
        return CliRunner().invoke(app, [], prog_name="stylekit", env=env).output.split()

    assert complete("stylekit st", 1) == ["stylize"]
    assert "--precision" in complete("stylekit stylize --pre", 2)
    assert complete("stylekit plugins n", 2) == ["new"]


def test_a_mistyped_option_is_a_usage_error_not_a_bug(tmp_path):
    result = CliRunner().invoke(app, ["train", str(tmp_path / "recipe.yaml"), "--dry-run"], env=ENV)
    assert result.exit_code == 2, result.output
    assert "No such option: --dry-run" in result.output and "probably a bug" not in result.output
    assert "Usage:" in result.output and "--help" in result.output


def test_plugins_listing_marks_required_options():
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    assert "PydanticUndefined" not in result.output
    torchscript = next(line for line in result.output.splitlines() if "│ torchscript" in line)
    assert "weights (required)" in torchscript


def test_export_without_onnx_gives_the_install_hint(tmp_path, monkeypatch):
    from stylekit.checkpoint import save_model
    from stylekit.export import ExportError
    from stylekit.models.transformer import TransformerNet, TransformerOptions

    save_model(TransformerNet(TransformerOptions(channels=4, residual_blocks=0)), tmp_path / "model.safetensors")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the `export` extra were not installed
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and isinstance(result.exception.original, ExportError), result.output
    assert isinstance(result.exception.original, StylekitError)  # the CLI prints it as one paragraph, no traceback
    assert "ONNX export needs onnx, which is not installed: pip install 'stylekit[export]'" in str(result.exception)
    assert not (tmp_path / "m.onnx").exists()


def test_main_prints_the_hint_without_a_traceback(tmp_path, monkeypatch, capsys):
    from stylekit import cli
    from stylekit.checkpoint import save_model
    from stylekit.models.transformer import TransformerNet, TransformerOptions

    save_model(TransformerNet(TransformerOptions(channels=4, residual_blocks=0)), tmp_path / "model.safetensors")
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(sys, "argv", ["stylekit", "export", str(tmp_path), "-o", str(tmp_path / "m.onnx")])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # unwrap the console's line breaks
    assert "Traceback" not in err
    assert "error: ONNX export needs onnx and onnxruntime, which are not installed: pip install 'stylekit[export]'" in err


def test_help_shows_the_demo_extra_in_brackets():
    for args in (["--help"], ["demo", "--help"]):
        output = " ".join(CliRunner().invoke(app, args, env=ENV).output.split())
        assert "(needs stylekit[demo])" in output, args


def test_models_at_80_columns_shows_whole_names_and_which_has_the_depth_term():
    from stylekit.models import zoo

    names = zoo.list_models()
    if len(names) < 2:
        pytest.skip("needs the shipped models")
    output = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80", "TERM": "dumb"}).output
    starts = [output.index(f"│ {name} ") for name in names]  # each name whole, in the first column
    blocks = dict(zip(names, (output[a:b] for a, b in zip(starts, [*starts[1:], len(output)]))))
    assert "depth×50" in blocks["wave_depth_aware"] and "depth×" not in blocks["wave_johnson"]
    assert all(len(line) <= 80 for line in output.splitlines())
