"""`stylekit models`, `stylekit export` and `stylekit demo`: trained networks, shipped, shared and tried."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import StylekitError
from .app import app, check_number, console, printable


@app.command()
def models(pattern: str = typer.Argument("*", help="Shell-style filter on the names, e.g. '*wave*'.")) -> None:
    """List the style networks shipped with stylekit: try one with `stylekit stylize --model NAME photo.jpg`."""
    from ..checkpoint import read_card
    from ..models.zoo import list_models, shipped_model_file

    names = list_models(pattern)
    if not names:
        console.print(f"No shipped model matches {pattern!r}." if pattern != "*" else "No models ship with this "
                      "installation.")
        return
    table = Table(title="Shipped models: stylekit stylize --model NAME IMAGE", show_header=False)
    table.add_column("", no_wrap=True)  # the model's name is never cut: it is what --model takes
    table.add_column("")
    for name in names:
        file = shipped_model_file(name)
        card = read_card(file)
        training = card.get("training") or {}
        terms = ", ".join(f"{term}×{weight:g}" for term, weight in (training.get("losses") or {}).items()
                          if isinstance(weight, (int, float)) and weight > 0)
        style = "; ".join(f"{s.get('attribution') or s.get('name', '?')} ({s.get('license') or 'license not stated'})"
                          for s in card.get("style") or [])
        results = "; ".join(f"{e.get('dataset')}" + (f" in {e['style']}" if e.get("style") else "")
                            + f" ({e.get('images')} image{'' if e.get('images') == 1 else 's'}): "
                            + ", ".join(f"{k} {v:.3g}" for k, v in (e.get("means") or {}).items())
                            for e in card.get("evaluation") or [])
        table.add_row(f"[bold]{printable(name)}[/]", f"{file.stat().st_size / 1e6:.1f} MB")
        table.add_row("loss terms", printable(terms or "not recorded"))
        table.add_row("trained", printable(f"{training.get('steps')} steps, {training.get('image_size')} px, "
                                           f"backbone {training.get('backbone')}" if training else "not recorded"))
        styles = [s["style"] for s in card.get("style") or [] if s.get("style")]
        if styles:  # a multi-style network: what --style takes
            table.add_row("styles", printable(f"{', '.join(styles)} (--style NAME, or a blend: --style "
                                              f"{styles[0]}=0.5,{styles[-1]}=0.5)"))
        table.add_row("style" + ("s" if len(card.get("style") or []) > 1 else ""), printable(style or "not recorded"))
        table.add_row("held-out", printable(results or "—"))
        table.add_section()
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
    name: Optional[str] = typer.Option(None, "--name", help="The model's name on its card (default: the name of "
                                       "the run it was trained in), e.g. the name it ships under."),
) -> None:
    """Export a trained transformer for deployment, with its model card (in the file and as MODEL_CARD.md).

    ONNX exports are checked against PyTorch with onnxruntime."""
    from ..checkpoint import load_model, read_card
    from ..export import (MAX_OPSET, MIN_OPSET, ONNX_TOLERANCE, evaluation_of, export_onnx, export_safetensors,
                          export_torchscript, write_card)
    from ..session import resolve_model

    suffixes = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts", ".torchscript"),
                "safetensors": (".safetensors",)}
    if format_ not in suffixes:
        raise StylekitError(f"--format {format_!r}: choose onnx, torchscript or safetensors")
    if output.is_dir():
        raise StylekitError(f"--output {output} is a folder; give a file name such as {output / ('model' + suffixes[format_][0])}")
    if output.suffix.lower() not in suffixes[format_]:
        raise StylekitError(f"--output {output}: a {format_} file is named {' or '.join(suffixes[format_])}; "
                            f"e.g. {output.with_suffix(suffixes[format_][0])}")
    check_number("--opset", opset, MIN_OPSET, "the ONNX operator set version", MAX_OPSET)
    check_number("--verify-size", verify_size, 8, "the side of the test image the export is checked on", 4096)
    file = resolve_model(checkpoint)
    model, card = load_model(file), read_card(file)
    if evaluation:
        card = {**card, "evaluation": [evaluation_of(file, report) for report in evaluation]}
    if name:
        card = {**card, "name": name}
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
    card_file = write_card(card, output, format_, model.styles)
    console.print(f"{card_file}: model card" + ("" if card else " (none recorded: a checkpoint from before model "
                                                                 "cards, so it says only how to run the file)"))


@app.command()
def demo(
    run: Optional[Path] = typer.Argument(None, help="Run, checkpoint folder or .safetensors file to preselect, or a "
                                         "folder of runs to list instead of runs/."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model shipped with stylekit to preselect "
                                        "(`stylekit models` lists them)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every network interface; "
                             "the demo has no login)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: 7860, or the next free one)."),
    max_size: int = typer.Option(1024, "--max-size", min=0, help="Scale larger photos down so the longer side is "
                                 "this first (0: full size)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps…"),
) -> None:
    """Try models in the browser: a photo or webcam picture in, the stylized picture out (needs stylekit\\[demo])."""
    from ..demo import DemoEngine, build_app, model_choices, no_models_message, serve

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


