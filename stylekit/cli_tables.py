"""Rich tables for command summaries (kept out of cli.py so its commands stay thin)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


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
