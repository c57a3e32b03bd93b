"""What every ``stylekit`` command shares: the typer app, failures as one paragraph, --help as people read it,
the consoles and the common options. Each command group is a module of this package (:mod:`stylekit.cli`)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from ..errors import StylekitError


# -- how --help shows parameters ----------------------------------------------
# Recent typer versions print a type after every parameter, flags included (`--offline <bool>`), and
# repeatable ones as `<list[str]>`. Like click, stylekit shows none for flags and the element type for
# repeatable options and arguments (`--set <str>`, `INPUTS... <path>`). Every command gets this through
# _ReadableHelpGroup, so a new command needs nothing; tests/test_cli.py checks every command's help.

def _element_type(text: str | None) -> str | None:
    """``<list[Path]>`` → ``<path>``."""
    if text and text.startswith("<list[") and text.endswith("]>"):
        return f"<{text[6:-2].lower()}>"
    return text


class _ReadableOption(TyperOption):
    def display_type_rich(self, ctx):
        if self.is_flag:
            return None
        text = super().display_type_rich(ctx)
        return _element_type(text) if self.multiple else text


class _ReadableArgument(TyperArgument):
    def display_type_rich(self, ctx):
        text = super().display_type_rich(ctx)
        return _element_type(text) if self.nargs != 1 else text


def _readable(params):
    for param in params:
        if isinstance(param, TyperOption) and not isinstance(param, _ReadableOption):
            param.__class__ = _ReadableOption
        elif isinstance(param, TyperArgument) and not isinstance(param, _ReadableArgument):
            param.__class__ = _ReadableArgument
    return params


class _ReadableHelpCommand(TyperCommand):
    def get_params(self, ctx):
        return _readable(super().get_params(ctx))


class ReadableHelpGroup(TyperGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if type(command) is TyperCommand:
                command.__class__ = _ReadableHelpCommand

    def get_params(self, ctx):
        return _readable(super().get_params(ctx))



#: what to try when a command runs out of memory
MEMORY_HINTS = {
    "train": "lower schedule.batch_size or data.image_size (e.g. --set schedule.batch_size=2), or use "
             "precision=bf16",
    "ablate": "lower schedule.batch_size or data.image_size for every run (--set schedule.batch_size=2), or run "
              "fewer at a time (--jobs 1)",
    "bench": "lower --batch or --size",
    "stylize": "use smaller tiles (--tile 256), shrink the input (--max-size 2048), or fewer video frames per pass "
               "(--batch 1)",
    "evaluate": "shrink the content images (--size 512) or evaluate fewer (--max-images)",
    "depth": "shrink the input (--max-size 1024)",
    "export": "use a smaller --verify-size",
}


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "Cannot allocate memory" in text)


def _first_lines(text: str) -> str:
    """The message part of ``text``, blank lines removed. A traceback that a worker process embedded in it
    (DataLoader workers do) is replaced by its last line, the worker's own error message."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines)
                  if line.lstrip().startswith(("Traceback (most recent call last)", "Original Traceback"))), None)
    if start is not None:
        lines = lines[:start] + ([lines[-1].strip()] if len(lines) > start + 1 else [])
    return "\n".join(lines)[:4000]


def describe_failure(exc: BaseException, command: str | None) -> tuple[int, str]:
    """(exit code, one paragraph) for an exception that ended a command: what failed and what to do."""
    if isinstance(exc, StylekitError):
        return 2, _first_lines(str(exc))
    if _is_out_of_memory(exc):
        first = _first_lines(str(exc)).splitlines()[0] if str(exc).strip() else type(exc).__name__
        return 3, (f"out of memory ({first[:300]}). "
                   f"To fit: {MEMORY_HINTS.get(command or '', 'use smaller inputs')}.")
    if isinstance(exc, OSError) and exc.filename is not None:
        target = f"{exc.filename}" + (f" → {exc.filename2}" if exc.filename2 else "")
        advice = {errno.ENOSPC: "free some space or write somewhere else",
                  errno.EACCES: "check the permissions, or choose another path",
                  errno.EROFS: "the file system is read-only; choose another path",
                  errno.ENOENT: "check the path",
                  errno.ENOTDIR: "a part of the path is a file, not a folder",
                  errno.EISDIR: "give a file, not a folder",
                  errno.EEXIST: "remove it or choose another path"}.get(exc.errno, "check the path")
        return 1, f"{exc.strerror or type(exc).__name__}: {target}; {advice}."
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return 1, "no space left on the device; free some space or write somewhere else."
    summary = _first_lines(str(exc)).replace("\n", " ")[:500]
    return 1, (f"unexpected {type(exc).__name__}: {summary or '(no message)'}. This is probably a bug in stylekit "
               "or in a plugin; run again with --debug (or STYLEKIT_DEBUG=1) to see the traceback, and report it.")


def printable(text: object) -> str:
    """``text`` safe for a terminal: control characters (escape sequences in a hostile file name) are shown as
    ``\\x1b``-style escapes instead of being sent to the terminal, and rich markup is shown literally."""
    return escape("".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in str(text)))


class ReportedError(SystemExit):
    """Ends the process with ``code`` after :class:`StylekitGroup` printed the paragraph; ``str()`` is it."""

    def __init__(self, code: int, message: str, original: BaseException | None = None):
        super().__init__(code)
        self.message = message
        #: the exception that ended the command (for in-process callers, e.g. tests)
        self.original = original

    def __str__(self) -> str:
        return self.message


def _debug_requested(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("STYLEKIT_DEBUG", "").lower() in ("1", "true", "yes")


#: exceptions click handles itself (usage errors, --help's exit, Ctrl-C's abort). typer ≥ 0.2x vendors click as
#: typer._click, whose classes are not click's: both families, through typer's public names where it has them.
CLICK_OWN = (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, typer.Exit, typer.Abort,
             getattr(typer, "TyperException", click.ClickException))


class StylekitGroup(ReadableHelpGroup):
    """Every failure of a command ends in one paragraph on stderr and a non-zero exit, never a traceback
    (unless ``--debug`` or ``STYLEKIT_DEBUG=1``): exit 2 for mistakes in the input, 3 for running out of
    memory, 1 otherwise. Done here rather than around ``app()`` so in-process callers (tests) see the same."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CLICK_OWN + (KeyboardInterrupt,):
            raise  # click prints its own usage errors; Ctrl-C stays Ctrl-C
        except Exception as exc:
            if _debug_requested(ctx):
                raise
            code, message = describe_failure(exc, ctx.invoked_subcommand)
            err_console.print(f"[bold red]error:[/] {printable(message)}", highlight=False, soft_wrap=True)
            raise ReportedError(code, message, exc) from None


app = typer.Typer(cls=StylekitGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and apply feed-forward style transfer networks whose loss is composed from plugins.")
console = Console()
err_console = Console(stderr=True)

WeightsDirOption = typer.Option(None, "--weights-dir", help="Folder searched for pretrained weight files "
                                "(also STYLEKIT_WEIGHTS_DIR).")
OfflineOption = typer.Option(False, "--offline", help="Never download weights (also STYLEKIT_OFFLINE=1).")
PluginOption = typer.Option(None, "--plugin", "-p", help="Plugin .py file or module to load (repeatable).")


def weights_env(weights_dir: Optional[Path], offline: bool) -> None:
    if weights_dir is not None:
        os.environ["STYLEKIT_WEIGHTS_DIR"] = str(weights_dir)
    if offline:
        os.environ["STYLEKIT_OFFLINE"] = "1"


def split_list(values: Optional[List[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.callback()
def main_options(weights_dir: Optional[Path] = WeightsDirOption, offline: bool = OfflineOption,
                 debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure instead of a "
                                            "one-paragraph message (also STYLEKIT_DEBUG=1).")) -> None:
    weights_env(weights_dir, offline)


def check_number(flag: str, value: int | None, minimum: int, meaning: str, maximum: int | None = None) -> None:
    """A numeric option outside its range: one sentence naming the flag, what it means and a valid example."""
    if value is not None and (value < minimum or (maximum is not None and value > maximum)):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise StylekitError(f"{flag} {value}: {meaning}; it must be {bounds}")


def check_output_folder(flag: str, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise StylekitError(f"{flag} {folder} is a file; give a folder")


def options_text(options_model) -> str:
    """``name=default`` per option; a required option (no default) reads ``name (required)``."""
    return ", ".join(f"{name} (required)" if field.is_required()
                     else f"{name}={field.get_default(call_default_factory=True)!r}"
                     for name, field in options_model.model_fields.items())


def main() -> None:
    app()  # StylekitGroup turns failures into one-paragraph messages
