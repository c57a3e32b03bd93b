"""`stylekit stylize` and `stylekit depth`: a file per input image (or video)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import StylekitError
from .app import (OfflineOption, PluginOption, WeightsDirOption, app, check_number, check_output_folder, console,
                  err_console, printable, weights_env)


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
    style: Optional[str] = typer.Option(None, "--style", help="Multi-style models: a style's name (`stylekit "
                                        "models` lists them), or a blend such as wave=0.6,udnie=0.4."),
    strength: float = typer.Option(1.0, "--strength", help="Blend with the photo: 0 the photo, 1 fully stylized."),
    preserve_color: bool = typer.Option(False, "--preserve-color", help="Keep the photo's colors (the stylized "
                                        "brightness with the photo's chroma)."),
    backend: str = typer.Option("torch", "--backend", help="torch, or onnxruntime (CPU, float32; the model is "
                                "exported to ONNX once and cached; needs stylekit[export])."),
) -> None:
    """Stylize images of any size, and videos (audio kept), with a trained checkpoint."""
    from ..hardware import check_device, check_precision
    from ..stylize import MIN_TILE, expand_inputs, plan_outputs, style_label, stylization, stylize_files

    check_precision(precision, "--precision")
    check_number("--max-size", max_size, 1, "the longer side in pixels after shrinking")
    if tile is not None and tile != 0:
        check_number("--tile", tile, MIN_TILE, "the tile side in pixels (0 switches tiling off)")
    check_number("--overlap", overlap, 0, "pixels shared by neighboring tiles")
    if tile and overlap * 2 >= tile:
        raise StylekitError(f"--overlap {overlap}: must be less than half of --tile {tile}")
    check_number("--batch", batch, 1, "video frames per forward pass")
    if device != "auto":
        check_device(device, "--device")
    check_number("--strength", strength, 0.0, "the weight of the stylized image (0: the photo)", 1.0)
    check_backend(backend, device, precision)
    model_file, inputs, label = model_and_inputs(paths, shipped, "stylize", "photo.jpg")
    label += f"-{style_label(style)}" if style else ""
    files = expand_inputs(inputs, videos=True)
    plan_outputs(files, output, label)  # clashing or unsafe outputs are refused before the model is loaded
    net = load_network(model_file, backend)
    if net.styles and style is None:
        styles = net.styles
        raise StylekitError(f"{label} has {len(styles)} styles ({', '.join(styles)}): choose one with --style "
                            f"{styles[0]}, or blend them with --style {styles[0]}=0.5,{styles[-1]}=0.5; `stylekit "
                            f"sheet {'--model ' + label if shipped else model_file} PHOTO` shows them all on one photo")
    model = stylization(net, style, strength=strength, preserve_color=preserve_color)
    failures = []

    def on_error(path, exc):
        from ..data import describe_unreadable

        failures.append(path)
        err_console.print(f"[yellow]skipped[/] {printable(describe_unreadable(path, exc))}", highlight=False,
                          soft_wrap=True)

    with console.status("stylizing…") as status:
        written = stylize_files(
            model, files, output, max_size=max_size, device=device,
            precision="fp32" if backend == "onnxruntime" else precision, tile=tile,
            overlap=overlap, batch=batch, label=label, on_error=on_error,
            on_done=lambda src, dst: console.print(printable(f"{src} → {dst}"), highlight=False),
            on_warning=lambda text: err_console.print(f"[yellow]warning:[/] {printable(text)}"),
            on_frames=lambda done, total: status.update(f"stylizing… frame {done}" + (f"/{total}" if total else "")))
    console.print(f"{len(written)} file(s) written, {len(failures)} skipped")
    if failures and not written:
        raise StylekitError(f"none of the {len(failures)} input(s) could be stylized (see the messages above); "
                            "give readable images or videos")


def model_and_inputs(paths: list[Path], shipped: str | None, command: str, example: str):
    """(model file, inputs, label for output names) from ``[MODEL] INPUTS...`` or ``--model NAME INPUTS...``."""
    from .. import checkpoint
    from ..session import resolve_model

    if shipped is not None:
        return resolve_model(shipped), list(paths), shipped
    if len(paths) < 2:
        raise StylekitError(f"{command} needs a model and at least one input: `stylekit {command} RUN {example}`, or "
                            f"`stylekit {command} --model NAME {example}` for a shipped model (`stylekit models`)")
    model_file = resolve_model(paths[0])
    return model_file, list(paths[1:]), checkpoint.model_label(model_file)


BACKENDS = ("torch", "onnxruntime")


def check_backend(backend: str, device: str, precision: str) -> None:
    if backend not in BACKENDS:
        raise StylekitError(f"--backend {backend!r}: choose {' or '.join(BACKENDS)}")
    if backend == "onnxruntime" and (device not in ("auto", "cpu") or precision not in ("auto", "fp32")):
        raise StylekitError("--backend onnxruntime runs on the CPU in float32: leave out --device and --precision "
                            "(or give --device cpu --precision fp32), or use --backend torch")


def load_network(model_file: Path, backend: str = "torch"):
    """The network in ``model_file``, run by PyTorch or (``onnxruntime``) by ONNX Runtime."""
    from ..checkpoint import load_model

    net = load_model(model_file)
    if backend == "onnxruntime":
        from ..onnx_backend import OnnxRuntimeNetwork

        return OnnxRuntimeNetwork(net, model_file)
    return net


@app.command()
def sheet(
    paths: List[Path] = typer.Argument(..., metavar="[MODEL] PHOTO", help="A run directory, checkpoint directory "
                                       "or model .safetensors, then a photo (with --model: only the photo)."),
    shipped: Optional[str] = typer.Option(None, "--model", "-m", help="A model shipped with stylekit (`stylekit "
                                          "models` lists them) instead of a MODEL path."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="The sheet's file (default: beside the photo, "
                                          "as NAME_<model>_sheet.png)."),
    max_size: int = typer.Option(512, "--max-size", help="Shrink the photo so its longer side is at most this."),
    columns: int = typer.Option(4, "--columns", help="Pictures per row."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, fp16, bf16."),
) -> None:
    """All styles of a model on one photo, each captioned with its name: to pick one, or to show them."""
    from ..data import load_rgb
    from ..hardware import check_precision, pick_device, pick_precision
    from ..stylize import plan_outputs, style_sheet

    check_precision(precision, "--precision")
    check_number("--max-size", max_size, 8, "the photo's longer side in pixels")
    check_number("--columns", columns, 1, "pictures per row")
    model_file, inputs, label = model_and_inputs(paths, shipped, "sheet", "photo.jpg")
    if len(inputs) != 1:
        raise StylekitError(f"sheet takes one photo; got {len(inputs)} (stylize folders with `stylekit stylize`)")
    target = plan_outputs(inputs, output, f"{label}_sheet")[0]
    net = load_network(model_file)
    dtype = pick_precision(precision, pick_device("cpu"), inference=True)
    picture = style_sheet(net, load_rgb(inputs[0], max_size), dtype=dtype, columns=columns)
    target.parent.mkdir(parents=True, exist_ok=True)
    picture.save(target)
    count = len(net.styles) or 1
    console.print(printable(f"{inputs[0]} → {target} ({count} style{'s' if count > 1 else ''})"), highlight=False)


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
    from ..data import describe_unreadable, load_rgb, to_tensor
    from ..depth.maps import save_depth_maps
    from ..plugins import get_registry
    from ..session import build_component
    from ..stylize import distinct_stems, expand_inputs
    from ..yamlio import options_from_texts

    weights_env(weights_dir, offline)
    check_number("--max-size", max_size, 1, "the longer side in pixels after shrinking")
    check_output_folder("--output", output)
    files = expand_inputs(inputs)
    registry = get_registry(plugin or [])
    registry.get("depth", network, "--network")  # an unknown name: the error lists the registered ones
    net = build_component("depth", network, options_from_texts(option, "--option"), registry=registry,
                          where="--option")
    skipped = 0
    for source, stem in zip(files, distinct_stems(files)):  # a/x.jpg and b/x.png never share an output
        try:
            image = to_tensor(load_rgb(source, max_size))[None]
        except Exception as exc:
            skipped += 1
            err_console.print(f"[yellow]skipped[/] {printable(describe_unreadable(source, exc))}", highlight=False,
                              soft_wrap=True)
            continue
        png16, preview = save_depth_maps(net, image, output, stem)
        console.print(printable(f"{source} → {png16}, {preview}"), highlight=False)
    if skipped == len(files):
        raise StylekitError(f"none of the {len(files)} input(s) could be read as an image (see the messages above)")
    if skipped:
        console.print(f"{len(files) - skipped} image(s) written, {skipped} skipped")
