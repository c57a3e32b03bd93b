"""The ``stylekit`` command line (typer)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import List, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .errors import StylekitError


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


class _ReadableHelpGroup(TyperGroup):
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


class StylekitGroup(_ReadableHelpGroup):
    """Every failure of a command ends in one paragraph on stderr and a non-zero exit, never a traceback
    (unless ``--debug`` or ``STYLEKIT_DEBUG=1``): exit 2 for mistakes in the input, 3 for running out of
    memory, 1 otherwise. Done here rather than around ``app()`` so in-process callers (tests) see the same."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, typer.Exit, click.exceptions.Abort, click.ClickException, KeyboardInterrupt):
            raise  # click prints its own usage errors; Ctrl-C stays Ctrl-C
        except Exception as exc:
            if _debug_requested(ctx):
                raise
            code, message = describe_failure(exc, ctx.invoked_subcommand)
            err_console.print(f"[bold red]error:[/] {printable(message)}", highlight=False, soft_wrap=True)
            raise ReportedError(code, message, exc) from None


app = typer.Typer(cls=StylekitGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and apply feed-forward style transfer networks whose loss is composed from plugins.")
plugins_app = typer.Typer(cls=_ReadableHelpGroup, help="List every registered component (kind, name, source, "
                          "options) or, with `new`, scaffold a plugin package.", invoke_without_command=True)
app.add_typer(plugins_app, name="plugins")
console = Console()
err_console = Console(stderr=True)

WeightsDirOption = typer.Option(None, "--weights-dir", help="Folder searched for pretrained weight files "
                                "(also STYLEKIT_WEIGHTS_DIR).")
OfflineOption = typer.Option(False, "--offline", help="Never download weights (also STYLEKIT_OFFLINE=1).")
PluginOption = typer.Option(None, "--plugin", "-p", help="Plugin .py file or module to load (repeatable).")


def _weights_env(weights_dir: Optional[Path], offline: bool) -> None:
    if weights_dir is not None:
        os.environ["STYLEKIT_WEIGHTS_DIR"] = str(weights_dir)
    if offline:
        os.environ["STYLEKIT_OFFLINE"] = "1"


def _split(values: Optional[List[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.callback()
def main_options(weights_dir: Optional[Path] = WeightsDirOption, offline: bool = OfflineOption,
                 debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure instead of a "
                                            "one-paragraph message (also STYLEKIT_DEBUG=1).")) -> None:
    _weights_env(weights_dir, offline)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (not needed with --resume)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE (repeatable)."),
    plugin: Optional[List[str]] = PluginOption,
    without: Optional[List[str]] = typer.Option(None, "--without", help="Drop a loss term (repeatable)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Keep only these terms (comma-separated)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Apply one of the recipe's named presets."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this run directory; "
                                          "--set/--without/--only then change it from the resumed step on (recorded "
                                          "in the run folder and shown by `stylekit runs`)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Exact run directory (default: OUTPUT_DIR/NAME, "
                                           "or NAME-2, NAME-3… when that folder holds anything)."),
    trust_run_plugins: bool = typer.Option(False, "--trust-run-plugins", help="With --resume: also import plugins "
                                           "the run's recipe lists that are neither given with --plugin nor "
                                           "installed (code that came with the run folder)."),
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (for logs)."),
) -> None:
    """Train a transformer network on a recipe, or continue a run (one writer per run folder at a time)."""
    from . import distributed

    _weights_env(weights_dir, offline)
    ctx = distributed.init_from_env()  # torchrun: join the process group; rank 0 names the run
    try:
        _train(recipe, set_, plugin, without, only, preset, resume, run_dir, no_progress, ctx, trust_run_plugins)
    finally:
        distributed.shutdown()


def _train(recipe, set_, plugin, without, only, preset, resume, run_dir, no_progress, ctx,
           trust_run_plugins=False) -> None:
    from . import distributed
    from .config import load_raw, load_recipe
    from .runs import RUN_CONTENTS, RunDir, run_info, run_name
    from .train import Trainer, summary_table

    overrides, without_, only_ = list(set_ or []), _split(without), _split(only)
    created = None
    if resume is not None:
        for given, flag in ((recipe, "a recipe"), (preset, "--preset"), (run_dir, "--run-dir")):
            if given is not None:
                raise StylekitError(f"--resume continues {resume} with its own recipe; {flag} cannot be given "
                                    "with it (change the resumed run with --set/--without/--only)")
        target = RunDir(resume)
        if not target.config.is_file():
            raise StylekitError(f"--resume: {resume} is not a run directory (no {target.config.name})")
        raw = load_raw(target.inside(target.config))
        target.check_plugins(raw.get("plugins") or [], given=plugin or [], trust=trust_run_plugins)
        recipe_obj = load_recipe(None, overrides, without=without_, only=only_, extra_plugins=plugin or [], raw=raw)
        changes = {"overrides": overrides, "without": without_, "only": only_}
    else:
        if recipe is None:
            raise StylekitError("give a recipe, e.g. `stylekit train recipes/quickstart.yaml`, or --resume RUN_DIR")
        if trust_run_plugins:
            raise StylekitError("--trust-run-plugins only applies to --resume (a recipe's plugins are yours)")
        recipe_obj = load_recipe(recipe, overrides, without=without_, only=only_, extra_plugins=plugin or [],
                                 preset=preset)
        name = run_name(recipe_obj.name, overrides, without_, only_, preset=recipe_obj.preset)
        if run_dir is None and ctx.is_main:  # a fresh folder, locked from now on (see RunDir.create)
            from .preflight import check_writable_folder

            check_writable_folder(recipe_obj.output_dir, "output_dir")  # before any folder is made in it
            created = RunDir.create(recipe_obj.output_dir, name)
        path = distributed.broadcast_object(ctx, str(run_dir) if run_dir is not None else
                                            str(created.path) if created is not None else None)
        target = created or RunDir(path)
        changes = run_info(recipe, overrides, without_, only_, recipe_obj.preset, name)
    try:
        trainer = Trainer(recipe_obj, target, resume=resume is not None, run_info=changes, console=err_console,
                          show_progress=not no_progress)
        result = trainer.fit()
    finally:
        if created is not None:
            created.release()
    if not ctx.is_main:
        return
    console.print(summary_table(result, title=f"{recipe_obj.name}: {result.run_dir}"))
    console.print(f"Run directory: [bold]{result.run_dir}[/] ({RUN_CONTENTS})")
    console.print(f"Stylize with: stylekit stylize {result.run_dir} IMAGE -o OUT.png")


def _check_number(flag: str, value: int | None, minimum: int, meaning: str, maximum: int | None = None) -> None:
    """A numeric option outside its range: one sentence naming the flag, what it means and a valid example."""
    if value is not None and (value < minimum or (maximum is not None and value > maximum)):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise StylekitError(f"{flag} {value}: {meaning}; it must be {bounds}")


def _check_output_folder(flag: str, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise StylekitError(f"{flag} {folder} is a file; give a folder")


@app.command()
def stylize(
    paths: List[Path] = typer.Argument(..., metavar="[MODEL] INPUTS...",
                                       help="A run directory, checkpoint directory or model .safetensors, then image "
                                            "or video files or folders of them (with --model: only the inputs)."),
    shipped: Optional[str] = typer.Option(None, "--model", "-m", help="A model shipped with stylekit (`stylekit "
                                          "models` lists them) instead of a MODEL path: no training, no download."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Output file (one input) or folder "
                                          "(default: beside each input, as NAME_<model>.png / .mp4)."),
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Shrink so the longer side is at most this."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps…"),
    precision: str = typer.Option("auto", "--precision",
                                  help="auto (fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32), fp32, fp16, bf16."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Tile size for large images (default: 512 above "
                                       "~4 megapixels; 0: never tile; else at least 64)."),
    overlap: int = typer.Option(64, "--overlap", help="Overlap of neighboring tiles, blended with feathering."),
    batch: int = typer.Option(4, "--batch", help="Video frames per forward pass."),
) -> None:
    """Stylize images of any size, and videos (audio kept), with a trained checkpoint."""
    from .checkpoint import load_model, model_label
    from .runtime import check_device
    from .stylize import MIN_TILE, expand_inputs, plan_outputs, stylize_files

    if precision not in ("auto", "fp32", "fp16", "bf16"):
        raise StylekitError(f"--precision {precision!r}: choose auto, fp32, fp16 or bf16")
    _check_number("--max-size", max_size, 1, "the longer side in pixels after shrinking")
    if tile is not None and tile != 0:
        _check_number("--tile", tile, MIN_TILE, "the tile side in pixels (0 switches tiling off)")
    _check_number("--overlap", overlap, 0, "pixels shared by neighboring tiles")
    if tile and overlap * 2 >= tile:
        raise StylekitError(f"--overlap {overlap}: must be less than half of --tile {tile}")
    _check_number("--batch", batch, 1, "video frames per forward pass")
    if device != "auto":
        check_device(device, "--device")
    if shipped is not None:
        from .models.zoo import model_file

        checkpoint, inputs, label = model_file(shipped), list(paths), shipped
    elif len(paths) < 2:
        raise StylekitError("stylize needs a model and at least one input: `stylekit stylize RUN photo.jpg`, or "
                            "`stylekit stylize --model NAME photo.jpg` for a shipped model (`stylekit models`)")
    else:
        checkpoint, inputs = paths[0], list(paths[1:])
        label = model_label(checkpoint)
    files = expand_inputs(inputs, videos=True)
    plan_outputs(files, output, label)  # clashing or unsafe outputs are refused before the model is loaded
    model = load_model(checkpoint)
    failures = []

    def on_error(path, exc):
        from .data import describe_unreadable

        failures.append(path)
        err_console.print(f"[yellow]skipped[/] {printable(describe_unreadable(path, exc))}", highlight=False,
                          soft_wrap=True)

    with console.status("stylizing…") as status:
        written = stylize_files(
            model, files, output, max_size=max_size, device=device, precision=precision, tile=tile,
            overlap=overlap, batch=batch, label=label, on_error=on_error,
            on_done=lambda src, dst: console.print(printable(f"{src} → {dst}"), highlight=False),
            on_warning=lambda text: err_console.print(f"[yellow]warning:[/] {printable(text)}"),
            on_frames=lambda done, total: status.update(f"stylizing… frame {done}" + (f"/{total}" if total else "")))
    console.print(f"{len(written)} file(s) written, {len(failures)} skipped")
    if failures and not written:
        raise StylekitError(f"none of the {len(failures)} input(s) could be stylized (see the messages above); "
                            "give readable images or videos")


@app.command()
def bench(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML (default: Johnson's settings, random VGG-16)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE (repeatable)."),
    batch: int = typer.Option(4, "--batch", help="Images per training step."),
    size: int = typer.Option(256, "--size", help="Training image size (square)."),
    steps: int = typer.Option(5, "--steps", help="Steps per timed round (each of stylekit and the baseline)."),
    rounds: int = typer.Option(3, "--rounds", help="Interleaved rounds."),
    warmup: int = typer.Option(2, "--warmup", help="Untimed steps of each first."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda… (default: the recipe's)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, fp32, bf16, fp16 (default: recipe's)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last",
                                                 help="Force NHWC on or off (default: the recipe's rule)."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile stylekit's networks."),
    stylize_bench: bool = typer.Option(True, "--stylize/--no-stylize", help="Also time stylization (512 px, 1080p)."),
    json_out: Path = typer.Option(Path("bench.json"), "--json", help="Where to write the results."),
) -> None:
    """Time stylekit's training step against a plain fp32 pytorch/examples-style step, and stylization."""
    import tempfile

    from .bench import bench_recipe, run_stylize_bench, run_training_bench, write_json
    from .cli_tables import bench_tables
    from .config import apply_overrides, load_raw

    with tempfile.TemporaryDirectory() as tmp:
        raw = load_raw(recipe) if recipe else bench_recipe(Path(tmp), size, batch)
        extra = [f"schedule.batch_size={batch}", f"data.image_size={size}", "log.every=1000000"]
        extra += [f"device={device}"] if device else []
        extra += [f"precision={precision}"] if precision else []
        extra += [f"performance.channels_last={str(channels_last).lower()}"] if channels_last is not None else []
        extra += ["performance.compile=true"] if compile_ else []
        raw = apply_overrides(raw, [*(set_ or []), *extra])
        with console.status("benchmarking…") as status:
            result = run_training_bench(raw, steps=steps, rounds=rounds, warmup=warmup,
                                        progress=lambda text: status.update(f"benchmarking: {text}"))
            if stylize_bench:
                status.update("benchmarking: stylization")
                result["stylize"] = run_stylize_bench(result["_model"], next(result["_model"].parameters()).device,
                                                      result["_dtype"])
    wide = Console(width=max(console.width, 120))  # the table has 9 columns; never squeeze them in a pipe
    for table in bench_tables(result):
        wide.print(table)
    write_json(result, json_out)
    console.print(f"Results written to {json_out}")


def _evaluation_of(model_file: Path, report_file: Path) -> dict:
    """The card entry (:func:`stylekit.card.evaluation_entry`) for ``model_file`` in an evaluation's metrics.json."""
    import json

    from .card import evaluation_entry
    from .checkpoint import find_model_file

    try:
        report = json.loads(Path(report_file).read_text())
        models, sources = report["inputs"]["models"], report["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        raise StylekitError(f"--evaluation {report_file}: not a `stylekit evaluate` metrics.json") from None
    for given, source in zip(models, sources):
        try:
            if find_model_file(given).resolve() == model_file.resolve():
                return evaluation_entry(report, source)
        except StylekitError:
            continue
    raise StylekitError(f"--evaluation {report_file}: it did not evaluate {model_file} (it evaluated "
                        f"{', '.join(map(str, models)) or 'no checkpoints'}); give the evaluation of this model")


@app.command()
def models(pattern: str = typer.Argument("*", help="Shell-style filter on the names, e.g. '*wave*'.")) -> None:
    """List the style networks shipped with stylekit: try one with `stylekit stylize --model NAME photo.jpg`."""
    from rich.table import Table

    from .checkpoint import read_card
    from .models.zoo import list_models, model_file

    names = list_models(pattern)
    if not names:
        console.print(f"No shipped model matches {pattern!r}." if pattern != "*" else "No models ship with this "
                      "installation.")
        return
    table = Table(title="Shipped models (stylekit stylize --model NAME IMAGE)")
    for column in ("name", "style (license)", "trained", "held-out results", "size"):
        table.add_column(column)
    for name in names:
        file = model_file(name)
        card = read_card(file)
        style = "; ".join(f"{s.get('attribution') or s.get('name', '?')} ({s.get('license') or 'license not stated'})"
                          for s in card.get("style") or []) or "not recorded"
        training = card.get("training") or {}
        trained = (f"{card.get('description') or card.get('recipe_name', '')}: {training.get('steps')} steps, "
                   f"{training.get('image_size')} px" if training else "not recorded")
        results = "; ".join(f"{e.get('dataset')} ({e.get('images')} images): "
                            + ", ".join(f"{k} {v:.3g}" for k, v in (e.get("means") or {}).items())
                            for e in card.get("evaluation") or []) or "—"
        table.add_row(name, printable(style), printable(trained), printable(results),
                      f"{file.stat().st_size / 1e6:.1f} MB")
    console.print(table)


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Run directory, checkpoint directory or model.safetensors."),
    format_: str = typer.Option("onnx", "--format", "-f", help="onnx (dynamic height/width), torchscript, or "
                                "safetensors (a stylekit model file, float16: to share, or to ship in "
                                "stylekit/models/pretrained/)."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.onnx, .pt or .safetensors)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    verify_size: int = typer.Option(512, "--verify-size", help="Side of the image ONNX is checked on."),
    evaluation: Optional[List[Path]] = typer.Option(None, "--evaluation", help="A `stylekit evaluate` metrics.json "
                                                    "that evaluated this model: its held-out results go into the "
                                                    "model card (repeatable, one per data set)."),
) -> None:
    """Export a trained transformer for deployment, with its model card (in the file and as MODEL_CARD.md beside
    it); ONNX is checked against PyTorch with onnxruntime."""
    from .checkpoint import find_model_file, load_model, read_card
    from .export import (MAX_OPSET, MIN_OPSET, ONNX_TOLERANCE, export_onnx, export_safetensors, export_torchscript,
                         write_card)

    suffixes = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts", ".torchscript"),
                "safetensors": (".safetensors",)}
    if format_ not in suffixes:
        raise StylekitError(f"--format {format_!r}: choose onnx, torchscript or safetensors")
    if output.is_dir():
        raise StylekitError(f"--output {output} is a folder; give a file name such as {output / ('model' + suffixes[format_][0])}")
    if output.suffix.lower() not in suffixes[format_]:
        raise StylekitError(f"--output {output}: a {format_} file is named {' or '.join(suffixes[format_])}; "
                            f"e.g. {output.with_suffix(suffixes[format_][0])}")
    _check_number("--opset", opset, MIN_OPSET, "the ONNX operator set version", MAX_OPSET)
    _check_number("--verify-size", verify_size, 8, "the side of the test image the export is checked on", 4096)
    file = find_model_file(checkpoint)
    model, card = load_model(file), read_card(file)
    if evaluation:
        card = {**card, "evaluation": [_evaluation_of(file, report) for report in evaluation]}
    if format_ == "onnx":
        diff = export_onnx(model, output, opset=opset, verify_size=verify_size, card=card)
        console.print(f"{output}: ONNX opset {opset}, dynamic batch/height/width; onnxruntime vs PyTorch on a "
                      f"{verify_size} px image: max abs difference {diff:.3g} (0–255 scale, allowed < {ONNX_TOLERANCE})")
    elif format_ == "safetensors":
        diff = export_safetensors(model, file, output, card=card)
        console.print(f"{output}: stylekit model file, float16 weights ({output.stat().st_size / 1e6:.1f} MB); "
                      f"max abs difference {diff:.3g} (0–255 scale)")
    else:
        diff = export_torchscript(model, output, card=card)
        console.print(f"{output}: TorchScript (loads with torch.jit.load, no stylekit needed); "
                      f"max abs difference {diff:.3g}")
    card_file = write_card(card, output, format_)
    console.print(f"{card_file}: model card" + ("" if card else " (none recorded: a checkpoint from before model "
                                                                 "cards, so it says only how to run the file)"))


@app.command()
def demo(
    run: Optional[Path] = typer.Argument(None, help="Run, checkpoint folder or .safetensors file to preselect, or a "
                                         "folder of runs to list instead of runs/."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model shipped with stylekit to preselect "
                                        "(`python -c 'import stylekit; print(stylekit.list_models())'`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every network interface; "
                             "the demo has no login)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: 7860, or the next free one)."),
    max_size: int = typer.Option(1024, "--max-size", min=0, help="Scale larger photos down so the longer side is "
                                 "this first (0: full size)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps…"),
) -> None:
    """Try models in the browser: a photo or webcam picture in, the stylized picture out (needs stylekit[demo])."""
    from .demo import DemoEngine, build_app, model_choices, no_models_message, serve

    choices = model_choices(run, model)
    if not choices:
        raise StylekitError(no_models_message(run))
    engine = DemoEngine(device=device, max_size=max_size)
    started = lambda url: console.print(f"stylekit demo: [bold]{url}[/] ({len(choices)} model(s), first: "  # noqa: E731
                                        f"{choices[0].label}); Ctrl-C stops it", highlight=False)
    try:
        serve(build_app(choices, engine, refresh=lambda: model_choices(run, model)), host=host, port=port,
              on_start=started)
    finally:
        engine.close()


@app.command()
def config(
    recipe: Path = typer.Argument(..., help="Recipe YAML."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE (repeatable)."),
    plugin: Optional[List[str]] = PluginOption,
    without: Optional[List[str]] = typer.Option(None, "--without", help="Drop a loss term (repeatable)."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Keep only these terms (comma-separated)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Apply one of the recipe's named presets."),
) -> None:
    """Print the fully resolved recipe (extends, preset, overrides and defaults applied)."""
    from .config import dump_recipe, load_recipe

    console.print(dump_recipe(load_recipe(recipe, set_ or [], without=_split(without), only=_split(only),
                                          extra_plugins=plugin or [], preset=preset)), markup=False, highlight=False,
                  soft_wrap=True)  # never wrap: a wrapped long path would change the YAML's value


@app.command()
def depth(
    inputs: List[Path] = typer.Argument(..., help="Image files or folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    network: str = typer.Option("effnet_depth_lite", "--network", "-n", help="Registered depth network."),
    option: Optional[List[str]] = typer.Option(None, "--option", help="Depth-network option KEY=VALUE (repeatable)."),
    plugin: Optional[List[str]] = PluginOption,
    max_size: Optional[int] = typer.Option(None, "--max-size", help="Resize so the longer side is at most this."),
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
) -> None:
    """Write what a depth network sees: a 16-bit PNG (nearer = brighter) and a color preview per image."""
    from pydantic import ValidationError

    from .config import format_validation_error, parse_override
    from .data import describe_unreadable, load_rgb, to_tensor
    from .errors import ConfigError
    from .depth.maps import save_depth_maps
    from .plugins import get_registry
    from .stylize import expand_inputs

    _weights_env(weights_dir, offline)
    _check_number("--max-size", max_size, 1, "the longer side in pixels after shrinking")
    _check_output_folder("--output", output)
    options: dict = {}
    for text in option or []:
        keys, value = parse_override(text, "--option")
        options[".".join(keys)] = value
    files = expand_inputs(inputs)
    depth_cls = get_registry(plugin or []).get("depth", network)
    try:
        net = depth_cls(depth_cls.Options.model_validate(options))
    except ValidationError as exc:
        raise ConfigError(f"--option: invalid options for depth network {network}:\n"
                          + format_validation_error(exc, "", depth_cls.Options)) from None
    skipped = 0
    for source in files:
        try:
            image = to_tensor(load_rgb(source, max_size))[None]
        except Exception as exc:
            skipped += 1
            err_console.print(f"[yellow]skipped[/] {printable(describe_unreadable(source, exc))}", highlight=False,
                              soft_wrap=True)
            continue
        png16, preview = save_depth_maps(net, image, output, source.stem)
        console.print(printable(f"{source} → {png16}, {preview}"), highlight=False)
    if skipped == len(files):
        raise StylekitError(f"none of the {len(files)} input(s) could be read as an image (see the messages above)")
    if skipped:
        console.print(f"{len(files) - skipped} image(s) written, {skipped} skipped")


@app.command()
def ablate(
    recipe: Path = typer.Argument(..., help="Recipe YAML."),
    vary: Optional[List[str]] = typer.Option(None, "--vary", help="KEY.PATH=V1,V2,… (repeatable; the grid is the "
                                             "cross product), e.g. losses.depth.weight=0,1,5,10."),
    without_each: Optional[List[str]] = typer.Option(None, "--without-each", help="Also run with each of these "
                                                     "terms dropped in turn (comma-separated)."),
    seeds: int = typer.Option(1, "--seeds", help="Repeat every configuration with this many seeds."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override KEY.PATH=VALUE for every run."),
    plugin: Optional[List[str]] = PluginOption,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Grid folder (default: "
                                          "OUTPUT_DIR/<recipe>-ablate-<varied keys>)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time (>1: `stylekit train` subprocesses, one GPU "
                             "each when several are visible)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="Skip timing a few steps for the estimate."),
    replace: bool = typer.Option(False, "--replace", help="Runs whose folder holds a different config: move the "
                                 "old folder to GRID/.replaced/ and run again."),
    summary_only: bool = typer.Option(False, "--summary-only", help="Run nothing; rewrite the summary (e.g. after "
                                      "`stylekit evaluate`)."),
    contact_images: Optional[Path] = typer.Option(None, "--contact-images", help="Images for the contact sheet "
                                                  "(default: the recipe's log.sample_images, else the first "
                                                  "training images)."),
    contact_count: int = typer.Option(4, "--contact-count", help="How many images the contact sheet shows."),
    contact_size: int = typer.Option(256, "--contact-size", help="Longer side of contact sheet inputs (pixels)."),
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
) -> None:
    """Run a grid of ablations (vary × without-each × seeds) and summarize it: table, contact sheet, trade-off plot.

    Re-running the same command skips finished runs and resumes interrupted ones.
    """
    from .ablate import ablate as run_ablation
    from .ablate import expand_grid

    _weights_env(weights_dir, offline)
    grid = expand_grid(recipe, vary or [], _split(without_each), seeds, set_ or [], plugin or [], output)
    try:
        outcomes = run_ablation(grid, jobs=jobs, dry_run=dry_run, estimate=not no_estimate, replace=replace,
                                summary_only=summary_only, console=console, contact_source=contact_images,
                                contact_count=contact_count, contact_size=contact_size)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # the hint to re-run has been printed
    if any(o.state != "finished" for o in outcomes):
        raise typer.Exit(1)


@app.command()
def runs(
    args: Optional[List[str]] = typer.Argument(None, help="DIR (default: runs/), or `compare RUN_A RUN_B …`."),
) -> None:
    """List runs (what changed, progress, final losses, status), or `runs compare A B …` side by side."""
    from .runs import compare_tables, find_runs, read_run, runs_table

    args = list(args or [])
    if args[:1] == ["compare"]:
        if len(args) < 3:
            raise StylekitError("`stylekit runs compare` needs two or more run directories")
        records = [read_run(_run_dir(Path(a))) for a in args[1:]]
        for table in compare_tables(records):
            console.print(table)
        return
    if len(args) > 1:
        raise StylekitError("give one folder (`stylekit runs DIR`), or `stylekit runs compare A B …`")
    root = Path(args[0]) if args else Path("runs")
    found = find_runs(root)
    if not found:
        console.print(f"no runs under {root}")
        return
    console.print(runs_table([read_run(p) for p in found], title=f"runs in {root}"))


def _run_dir(path: Path) -> Path:
    from .runs import RUN_MARKERS, is_run_dir

    if not is_run_dir(path):
        raise StylekitError(f"{path} is not a run directory (no {', '.join(RUN_MARKERS)})")
    return path


@plugins_app.callback()
def plugins_list(ctx: typer.Context, plugin: Optional[List[str]] = PluginOption) -> None:
    """List every registered component: kind, name, source and options."""
    if ctx.invoked_subcommand is not None:
        return
    from .plugins import get_plugin_manager

    manager = get_plugin_manager(plugin or [])
    table = Table(title="stylekit components")
    for column in ("kind", "name", "source", "summary", "options (defaults)"):
        table.add_column(column, overflow="fold")
    for entry in manager.registry:
        table.add_row(entry.kind, entry.name, entry.source, entry.cls.summary(), _options_text(entry.cls.Options))
    console.print(table)
    for name, message in manager.failures:
        err_console.print(f"[red]plugin {name} failed to load:[/] {message}")


@plugins_app.command("new")
def plugins_new(
    name: str = typer.Argument(..., help="Component name, e.g. edge_loss (package stylekit-edge-loss)."),
    kind: str = typer.Option("loss", "--kind", "-k", help="loss, backbone or depth."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder in which the package folder is created."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty package folder."),
) -> None:
    """Scaffold a ready-to-install plugin package (pyproject, module, test, recipe, README)."""
    from .scaffold import scaffold

    target = scaffold(name, kind, output, force=force)
    console.print(f"Created [bold]{target}[/]:")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(target)}")
    console.print(f"Next: cd {target} && python -m pytest -q && pip install -e . && stylekit plugins")


@app.command()
def evaluate(
    models: Optional[List[Path]] = typer.Argument(None, help="Checkpoints (run dir, checkpoint dir, model.safetensors) "
                                                  "or folders of stylized images. Two: BASELINE CANDIDATE."),
    content: Path = typer.Option(..., "--content", help="Folder of content images."),
    output: Path = typer.Option(Path("evaluation"), "--output", "-o", help="Output folder for metrics and report."),
    reference_dir: Optional[List[Path]] = typer.Option(None, "--reference-dir", help="Folder of images from another "
                                                       "method (same file stems as the content), repeatable."),
    reference_pattern: str = typer.Option("{stem}", "--reference-pattern", help="File name (no suffix) of a "
                                          "reference image for content STEM, e.g. '{stem}_wave'."),
    style: Optional[Path] = typer.Option(None, "--style", help="Style image for the style loss (default: the "
                                         "checkpoint recipe's)."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=1, help="Evaluate the first N content images."),
    size: Optional[int] = typer.Option(None, "--size", min=16, help="Resize content so the longer side is this."),
    depth_network: Optional[str] = typer.Option(None, "--depth-network", help="Registered depth network that judges "
                                                "depth (default: the first of effnet_depth_lite lite0, lite2, "
                                                "hed_depth_lite on this machine that shares no weights with the "
                                                "models' training networks)."),
    depth_option: Optional[List[str]] = typer.Option(None, "--depth-option", help="Depth network option KEY=VALUE."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Metrics to compute, comma-separated (default: "
                                          "every registered one; `stylekit plugins` lists them)."),
    backbone: str = typer.Option("vgg16", "--backbone", help="Backbone for the content and style losses."),
    backbone_option: Optional[List[str]] = typer.Option(None, "--backbone-option", help="Backbone option KEY=VALUE."),
    hed_option: Optional[List[str]] = typer.Option(None, "--hed-option", help="hed_vgg16 option KEY=VALUE (edges)."),
    bsds_gt: Optional[Path] = typer.Option(None, "--bsds-gt", help="BSDS500 groundTruth folder (*.mat)."),
    edge_threshold: float = typer.Option(0.5, "--edge-threshold", help="HED probability counted as an edge."),
    thin: bool = typer.Option(False, "--thin", help="Thin binarized edges to one pixel before matching."),
    compare: Optional[bool] = typer.Option(None, "--compare/--no-compare", help="Report candidate − baseline with "
                                           "bootstrap CIs (default: on when exactly two sources)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed for pixel pairs and the bootstrap."),
    figure_rows: int = typer.Option(6, "--figure-rows", min=1, help="Content images shown in the figure."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, auto…"),
    plugin: Optional[List[str]] = PluginOption,
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (for logs)."),
) -> None:
    """Measure depth, edge and saliency preservation (and SSIM, content/style loss) and write a report."""
    from .evaluate import EvalSettings, parse_options, run_evaluation
    from .evaluate.console import print_results, progress_bar

    _weights_env(weights_dir, offline)
    settings = EvalSettings(max_images=max_images, size=size, edge_threshold=edge_threshold, edge_thin=thin,
                            seed=seed, bootstrap=bootstrap, figure_rows=figure_rows)
    warn = lambda message: err_console.print(f"[yellow]warning:[/] {message}", highlight=False)  # noqa: E731
    with progress_bar(err_console, enabled=not no_progress) as progress:
        output_ = run_evaluation(models or [], content, output, reference_dirs=reference_dir or [],
                                 reference_pattern=reference_pattern, style=style,
                                 depth_network=depth_network,
                                 depth_options=parse_options(depth_option, "--depth-option"),
                                 metrics=_split([metrics]) if metrics else None,
                                 backbone=backbone, backbone_options=parse_options(backbone_option, "--backbone-option"),
                                 hed_options=parse_options(hed_option, "--hed-option"), bsds_gt=bsds_gt,
                                 compare_models=compare, settings=settings, device=device, plugins=plugin or [],
                                 progress=progress, warn=warn)
    print_results(console, output_)


def _options_text(options_model) -> str:
    """``name=default`` per option; a required option (no default) reads ``name (required)``."""
    return ", ".join(f"{name} (required)" if field.is_required()
                     else f"{name}={field.get_default(call_default_factory=True)!r}"
                     for name, field in options_model.model_fields.items())


def main() -> None:
    app()  # StylekitGroup turns failures into one-paragraph messages
