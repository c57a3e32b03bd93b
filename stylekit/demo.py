"""``stylekit demo``: try trained models in the browser (a Gradio app; ``pip install "stylekit[demo]"``).

A photo (upload, webcam or clipboard) → the stylized picture, with a model picker over the runs in a folder
and the models shipped with stylekit, a strength slider that blends with the photo, and a PNG download. A
multi-style model adds its style list, a second style to blend with and a blend slider (its γ/β mixed, as
``--style a=0.6,b=0.4``).
The app is for a trusted local network: it binds to 127.0.0.1 unless told otherwise, never opens a share
link and sends no analytics (Gradio's telemetry and version check are off).

Finding the models needs no Gradio (:func:`model_choices`); only :func:`build_app` and :func:`serve` import it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .checkpoint import model_label
from .runs.folder import RunDir
from .session import load, resolve_model
from .stylizer import Stylizer, blend
from .errors import ImageError, StylekitError
from .models import zoo

#: the folder of runs the picker lists when none is given
DEFAULT_RUNS = Path("runs")
#: results kept in memory, so moving the strength slider does not run the network again
RESULT_CACHE = 8


@dataclass(frozen=True)
class Choice:
    label: str  # what the picker shows
    source: str  # what stylekit.load takes: a path or a shipped model's name


def model_choices(target: str | os.PathLike | None = None, shipped: str | None = None,
                  runs_dir: Path = DEFAULT_RUNS) -> list[Choice]:
    """The picker's entries, the preselected one first.

    ``target``: a run, checkpoint folder or ``.safetensors`` file (preselected), or a folder of runs (listed
    instead of ``runs_dir``). ``shipped``: the name of a shipped model to preselect.
    """
    from .checkpoint import latest_checkpoint
    from .runs.records import find_runs

    first: list[Choice] = []
    if shipped is not None:
        zoo.shipped_model_file(shipped)  # an unknown name: the error lists the shipped ones
        first.append(Choice(f"{shipped} (shipped)", shipped))
    if target is not None:
        path = Path(target).expanduser()
        if not path.exists():
            raise StylekitError(f"{path}: no such run, checkpoint or folder of runs")
        try:
            resolve_model(path)
            first.append(Choice(_run_label(path), str(path)))
        except StylekitError:
            runs_dir = path  # not a model itself: a folder of runs (runs/, an ablation grid…)
    runs = find_runs(runs_dir) if runs_dir.is_dir() else []
    listed = [Choice(_run_label(run), str(run)) for run in runs if latest_checkpoint(run) is not None]
    listed += [Choice(f"{name} (shipped)", name) for name in zoo.list_models()]
    seen = {c.source for c in first}
    return first + [c for c in listed if c.source not in seen]


def _run_label(path: Path) -> str:
    from .checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(path) if path.is_dir() else None
    return f"{path} (step {RunDir.step_of(checkpoint)})" if checkpoint is not None else str(path)


def no_models_message(folder: str | os.PathLike | None = None) -> str:
    """What to do when :func:`model_choices` found nothing (``folder``: the folder of runs that was searched)."""
    return (f"no models to show: no run with a checkpoint under {Path(folder or DEFAULT_RUNS)}/ and no shipped "
            "model. Train one (`stylekit train recipes/quickstart.yaml`) or name one: `stylekit demo RUN_DIR`, "
            "`stylekit demo path/to/model.safetensors`")


class DemoEngine:
    """Loads models on first use and stylizes photos; the last few full-strength results are kept, so the
    strength slider only re-blends."""

    def __init__(self, *, device: str = "auto", max_size: int | None = 1024, output_dir: Path | None = None):
        self.device = device
        self.max_size = max_size or None
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="stylekit-demo-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._models: dict[Path, Stylizer] = {}
        self._results: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._written: list[Path] = []
        self._lock = threading.Lock()  # Gradio calls from worker threads; one photo at a time uses the cores best

    def model(self, source: str) -> Stylizer:
        file = resolve_model(source).resolve()  # a run's latest checkpoint: a newer one loads afresh
        if file not in self._models:
            self._models[file] = load(file, device=self.device)
        return self._models[file]

    def styles(self, source: str) -> list[str]:
        """The styles of a multi-style model ([] for a single-style one)."""
        with self._lock:
            return self.model(source).styles

    def stylize(self, photo: str | os.PathLike, source: str, strength: float,
                style: dict[str, float] | None = None) -> tuple[np.ndarray, Path]:
        """The photo file (as the browser sent it) → (stylized H×W×3 uint8, a PNG of it to download); ``style``: a
        multi-style model's style mixture ({name: weight}; None: its first style)."""
        with self._lock:
            return self._stylize(photo, source, strength, style)

    def _stylize(self, photo, source: str, strength: float, style: dict[str, float] | None) -> tuple[np.ndarray, Path]:
        from PIL import Image, ImageOps

        from .data import describe_unreadable, load_rgb, to_tensor

        try:
            image = load_rgb(photo)
        except Exception as exc:  # Pillow's decoders raise many kinds
            raise ImageError(f"{describe_unreadable(Path(photo).name, exc)}; give a JPEG, PNG or WebP photo") from None
        if self.max_size and max(image.size) > self.max_size:
            image = ImageOps.contain(image, (self.max_size, self.max_size), Image.Resampling.LANCZOS)
        content = to_tensor(image)[None]
        model = self.model(source)
        style = (style or {model.styles[0]: 1.0}) if model.styles else None
        key = (model.source, tuple(sorted((style or {}).items())), hashlib.sha1(content.numpy().tobytes()).hexdigest(),
               tuple(content.shape))
        styled = self._results.get(key)
        if styled is None:
            styled = model.stylize(content, style=style)
            self._results[key] = styled
            while len(self._results) > RESULT_CACHE:
                self._results.popitem(last=False)
        self._results.move_to_end(key)
        picture = blend(content, styled, strength)[0].round().byte().permute(1, 2, 0).numpy()
        return picture, self._write(picture, Path(photo).stem, source)

    def _write(self, picture: np.ndarray, stem: str, source: str) -> Path:
        from PIL import Image

        folder = Path(tempfile.mkdtemp(dir=self.output_dir))  # one folder per result: sessions never collide
        path = folder / f"{stem}-{model_label(resolve_model(source))}.png"
        Image.fromarray(picture).save(path)
        self._written.append(folder)
        while len(self._written) > 4 * RESULT_CACHE:  # the browser has fetched older ones long ago
            shutil.rmtree(self._written.pop(0), ignore_errors=True)
        return path

    def close(self) -> None:
        shutil.rmtree(self.output_dir, ignore_errors=True)


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it: no telemetry, no version ping
    try:
        import gradio
    except ImportError as exc:
        raise StylekitError('the demo needs Gradio: pip install "stylekit[demo]"') from exc
    return gradio


def mixture(style: str | None, blend_with: str | None, blend: float) -> dict[str, float] | None:
    """The demo's style controls as a mixture: ``style`` alone, or ``blend`` of ``blend_with`` and the rest of
    ``style`` (None: no style chosen, a single-style model)."""
    if not style:
        return None
    if not blend_with or blend_with == NO_BLEND or blend_with == style or blend <= 0:
        return {style: 1.0}
    if blend >= 1:
        return {blend_with: 1.0}
    return {style: round(1.0 - blend, 6), blend_with: round(blend, 6)}


#: the "blend with" choice that blends nothing
NO_BLEND = "(none)"


def build_app(choices: list[Choice], engine: DemoEngine, *, refresh: Callable[[], list[Choice]] | None = None):
    """The Gradio Blocks app. Its API endpoint ``/stylize`` takes (photo file, model source, strength, style,
    style to blend with, blend) and returns (stylized image, PNG file), which is what the tests call through
    ``gradio_client``; the style inputs matter only for a multi-style model."""
    gr = _gradio()

    def run(photo: str | None, source: str | None, strength: float, style: str | None = None,
            blend_with: str | None = None, blend: float = 0.0) -> tuple[Any, Any]:
        if photo is None:
            raise gr.Error("Upload a photo, paste one or take one with the webcam first.")
        if not source:
            raise gr.Error("Pick a model first.")
        try:
            picture, path = engine.stylize(photo, source, float(strength), mixture(style, blend_with, float(blend)))
        except StylekitError as exc:  # the user's to fix: said in the page, not as a traceback in the log
            raise gr.Error(str(exc), print_exception=False) from exc
        return picture, str(path)

    def run_if_ready(photo, source, strength, style, blend_with, blend):
        ready = photo is not None and source
        return run(photo, source, strength, style, blend_with, blend) if ready else (None, None)

    def styles_of(source: str | None) -> list[str]:
        try:
            return engine.styles(source) if source else []
        except StylekitError:  # said when stylizing
            return []

    def style_controls(source: str | None):
        """The style list, the style to blend with and the blend slider for ``source`` (hidden: one style)."""
        styles = styles_of(source)
        return (gr.Dropdown(choices=styles, value=styles[0] if styles else None, visible=bool(styles)),
                gr.Dropdown(choices=[NO_BLEND, *styles], value=NO_BLEND, visible=bool(styles)),
                gr.Slider(value=0.0, visible=bool(styles)))

    def rescan():
        fresh = refresh() if refresh else choices
        return gr.Dropdown(choices=[(c.label, c.source) for c in fresh])

    size_note = (f"Photos larger than {engine.max_size} px on the longer side are scaled down first "
                 "(`stylekit demo --max-size`)." if engine.max_size else "Photos are stylized at full size.")
    with gr.Blocks(title="stylekit demo", analytics_enabled=False) as app:
        gr.Markdown("## stylekit demo\nPick a model, give a photo, and download the result. " + size_note)
        with gr.Row(equal_height=True):
            model = gr.Dropdown(choices=[(c.label, c.source) for c in choices],
                                value=choices[0].source if choices else None, label="Model", scale=4,
                                info="Runs with a checkpoint, and the models shipped with stylekit")
            rescan_button = gr.Button("Rescan runs", scale=1, size="sm")
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength", scale=3,
                                 info="0: the photo, 1: fully stylized")
        first = styles_of(choices[0].source if choices else None)
        with gr.Row(equal_height=True):
            style = gr.Dropdown(choices=first, value=first[0] if first else None, visible=bool(first), label="Style",
                                scale=3, elem_id="style", info="This model's styles")
            blend_with = gr.Dropdown(choices=[NO_BLEND, *first], value=NO_BLEND, visible=bool(first),
                                     label="Blend with", scale=3, elem_id="blend-with",
                                     info="A second style, mixed in by the blend slider")
            blend = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Blend", scale=3, visible=bool(first),
                              elem_id="blend", info="0: the first style only, 1: the second only")
        with gr.Row():
            photo = _readable_uploads(gr, gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"],
                                                   label="Photo", elem_id="photo"))
            result = gr.Image(type="numpy", format="png", label="Stylized", interactive=False,
                              buttons=["download", "fullscreen"], elem_id="result")
        with gr.Row():
            button = gr.Button("Stylize", variant="primary", elem_id="stylize")
            download = gr.DownloadButton("Download PNG", elem_id="download")
        inputs, outputs = [photo, model, strength, style, blend_with, blend], [result, download]
        button.click(run, inputs, outputs, api_name="stylize")
        gr.on([photo.change, strength.release, style.input, blend_with.input, blend.release], run_if_ready, inputs,
              outputs, api_visibility="private", trigger_mode="always_last")
        model.change(style_controls, model, [style, blend_with, blend], api_visibility="private").then(
            run_if_ready, inputs, outputs, api_visibility="private")
        rescan_button.click(rescan, None, model, api_visibility="private")
    return app


def _readable_uploads(gr, photo):
    """``photo`` (a ``gr.Image``) answering an upload Pillow cannot read (a PDF, a text file) with one sentence
    in the page, where Gradio would show its raw "Could not preprocess input component" and log a traceback.
    Its ``preprocess`` is wrapped on the instance: a subclass would make Gradio write a .pyi stub beside this file."""
    preprocess = photo.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds
            from .data import describe_unreadable

            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"{describe_unreadable(name, exc)}; give a JPEG, PNG or WebP photo",
                           print_exception=False) from None

    photo.preprocess = checked
    return photo


def serve(app, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True,
          on_start: Callable[[str], None] | None = None) -> str:
    """Start the server and return its local URL; ``on_start(url)`` is called once it listens. With ``block``
    (the CLI) it then waits until Ctrl-C; without (tests) it returns at once and ``app.close()`` stops it."""
    _gradio()
    # quiet: Gradio's own banner suggests `share=True`, which this demo never uses
    _, url, _ = app.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                           quiet=True, show_error=True, ssr_mode=False, mcp_server=False, enable_monitoring=False,
                           pwa=False)
    if on_start is not None:
        on_start(url)
    if block:
        app.block_thread()
    return url
