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
) -> None:
    """Stylize images of any size, and videos (audio kept), with a trained checkpoint."""
    from .. import checkpoint
    from ..hardware import check_device, check_precision
    from ..session import resolve_model
    from ..stylize import MIN_TILE, expand_inputs, plan_outputs, stylize_files

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
    if shipped is not None:
        model_file, inputs, label = resolve_model(shipped), list(paths), shipped
    elif len(paths) < 2:
        raise StylekitError("stylize needs a model and at least one input: `stylekit stylize RUN photo.jpg`, or "
                            "`stylekit stylize --model NAME photo.jpg` for a shipped model (`stylekit models`)")
    else:
        model_file, inputs = resolve_model(paths[0]), list(paths[1:])
        label = checkpoint.model_label(model_file)
    files = expand_inputs(inputs, videos=True)
    plan_outputs(files, output, label)  # clashing or unsafe outputs are refused before the model is loaded
    model = checkpoint.load_model(model_file)
    failures = []

    def on_error(path, exc):
        from ..data import describe_unreadable

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
