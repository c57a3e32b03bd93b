"""`stylekit bench`: time the training step and stylization, as tables and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .app import app, console


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

    from ..bench import bench_recipe, run_stylize_bench, run_training_bench, write_json
    from ..config import apply_overrides, load_raw

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


def _num(value: float | None, fmt: str = "{:.3g}") -> str:
    return "–" if value is None else fmt.format(value)


def bench_tables(result: dict[str, Any]) -> list[Table]:
    table = Table(title=f"Training step: batch {result['batch']} × {result['size']} px on {result['device']} "
                        f"({result['threads']} threads)")
    for column in ("", "precision", "NHWC", "steps/s", "images/s", "ms/step", "GFLOP/step", "TFLOP/s",
                   "peak MiB"):
        table.add_column(column, justify="right" if column else "left")
    for name, m in result["results"].items():
        extra = m["extra"]
        table.add_row(name, extra.get("precision", ""), str(extra.get("channels_last", "no")),
                      f"{m['steps_per_s']:.3f}", f"{m['images_per_s']:.2f}",
                      f"{1000 / m['steps_per_s']:.0f}" if m["steps_per_s"] else "–",
                      _num(m["flops_per_step"] and m["flops_per_step"] / 1e9, "{:.1f}"), _num(m["tflops"], "{:.2f}"),
                      _num(m["peak_memory_mb"], "{:.0f}"))
    table.add_section()
    table.add_row("stylekit / reference", "", "", f"{result['ratio']:.2f}×", "", "", "", "", "")
    if "utilization" in result:
        u = result["utilization"]
        table.add_row("of device peak", "", "", "", "", "", "",
                      f"{100 * u['stylekit']:.1f}% / {100 * u['reference']:.1f}%", "")
    if result.get("max_rss_mb"):
        table.caption = (f"peak MiB: CUDA max allocated per side; process max RSS {result['max_rss_mb']:.0f} MiB. "
                         f"{result['rounds']} interleaved rounds × {result['steps_per_round']} steps each")
    tables = [table]
    if "stylize" in result:
        st = Table(title="Stylization (one image at a time)")
        for column in ("size", "s/image", "megapixels/s", "peak MiB"):
            st.add_column(column, justify="right")
        for label, row in result["stylize"].items():
            st.add_row(f"{label} ({row['width']}×{row['height']})", f"{row['seconds_per_image']:.3f}",
                       f"{row['megapixels_per_s']:.2f}", _num(row["peak_memory_mb"], "{:.0f}"))
        tables.append(st)
    return tables
