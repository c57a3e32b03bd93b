"""Evaluation outputs: metrics.json, metrics.csv, the comparison figure, bar charts, report.md and report.html."""

from __future__ import annotations

import csv
import html
import json
import math
import os
from pathlib import Path

import numpy as np

from ..data import to_image
from ..metrics import Column
from ..runs.folder import EVAL_METRICS_FILE
from .builtin_metrics import columns_markdown
from .runner import MIN_RELIABLE_N, EvalResult
from .tables import arrow, fmt, html_table, md_table

#: where a run name may be cut when shortened for a figure
SEPARATORS = "-_./: "


def _arrow(column: Column) -> str:
    return arrow(column.better)


def unavailable_text(result: EvalResult) -> dict[str, str]:
    """metric → 'not available (reason)' for every metric that did not run."""
    return {name: f"not available ({reason})" for name, reason in result.unavailable.items()}


# -- tables ------------------------------------------------------------------------------------------------------
def summary_rows(result: EvalResult, summary: dict) -> list[list[str]]:
    """Rows: metric (with ↑/↓), then 'mean [95% CI]' per source."""
    rows = []
    for column in result.columns:
        cells = [f"{column.key} {_arrow(column)}"]
        for source in result.sources:
            s = summary[source][column.key]
            cells.append(f"{fmt(s['mean'])} [{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]" if s["n"] else "–")
        rows.append(cells)
    return rows


def comparison_rows(comparison: list[dict]) -> list[list[str]]:
    return [[f"{r['metric']} {'↑' if r['better'] == 'higher' else '↓'}", fmt(r["baseline"]), fmt(r["candidate"]),
             f"{r['diff']:+.4g}" if not math.isnan(r["diff"]) else "–",
             f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]", str(r["n"]), _verdict(r)] for r in comparison]


def _verdict(row: dict) -> str:
    if row["verdict"] in ("better", "worse") and not row.get("reliable", True):
        return f"{row['verdict']} (unreliable: n < {MIN_RELIABLE_N})"
    return row["verdict"]


def small_sample_warning(rows: list[dict]) -> str:
    """The sentence that says the verdicts are unreliable, when fewer than MIN_RELIABLE_N images were paired."""
    n = max((r["n"] for r in rows), default=0)
    if not rows or n >= MIN_RELIABLE_N:
        return ""
    return (f"Unreliable verdicts: only {n} image(s) were compared (fewer than {MIN_RELIABLE_N}). With so few images "
            "a bootstrap CI is often too narrow, so 'better'/'worse' may not hold up: evaluate more images.")


def _plain(warning: bool, text: str, bold: str) -> str:
    """A header sentence, its warnings in bold (``bold``: '**' for Markdown, 'b' for HTML)."""
    if not warning:
        return text
    return f"**{text}**" if bold == "**" else f"<b>{text}</b>"


COMPARISON_HEADER = ["metric", "baseline", "candidate", "Δ (cand − base)", "95% CI of Δ", "n", "verdict"]


# -- files ---------------------------------------------------------------------------------------------------------
def write_json(result: EvalResult, summary: dict, comparison: dict | None, out: Path, inputs: dict,
               groups: dict | None = None) -> Path:
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    data = {"inputs": inputs, "networks": result.networks,
            "judges": [{"warning": warning, "text": text} for warning, text in result.header],
            "sources": result.sources, "images": result.images,
            "metrics": {c.key: {"label": c.label, "formula": c.formula, "network": c.network, "range": c.range,
                                "better": c.better} for c in result.columns},
            "unavailable": unavailable_text(result), "skipped": result.skipped, "summary": summary,
            "comparison": comparison, **({"groups": groups} if groups is not None else {}),
            "per_image": result.per_image}
    path = out / EVAL_METRICS_FILE
    path.write_text(json.dumps(clean(data), indent=2, ensure_ascii=False))
    return path


def write_csv(result: EvalResult, summary: dict, out: Path) -> Path:
    """One table: a row per (source, image), then a 'mean' row per source; unavailable metrics as text columns."""
    keys = [c.key for c in result.columns]
    missing = sorted(unavailable_text(result).items())
    path = out / "metrics.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "source", "image", *keys, *[name for name, _ in missing]])
        for r in result.per_image:
            writer.writerow(["image", r["source"], r["image"], *[_num(r.get(k)) for k in keys],
                             *[text for _, text in missing]])
        for source in result.sources:
            writer.writerow(["mean", source, f"({summary[source][keys[0]]['n'] if keys else 0} images)",
                             *[_num(summary[source][k]["mean"]) for k in keys], *[text for _, text in missing]])
    return path


def _num(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


# -- figures ---------------------------------------------------------------------------------------------------------
def comparison_figure(result: EvalResult, out: Path, cell: float = 1.9, names: list[str] | None = None) -> Path | None:
    """Per content image a row: content | each output | depth of content and outputs | HED edges of each
    (``names``: the sources shown, default all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.figure_data
    if not rows:
        return None
    names = names or result.sources
    labels = dict(zip(names, distinct_labels(names, 15)))
    has_depth = any(r.get("depth") for r in rows)
    has_edges = any(r.get("edges") for r in rows)
    groups: list[tuple[str, str, str]] = [("rgb", "content", "content")]
    groups += [("rgb", n, labels[n]) for n in names]
    if has_depth:
        groups += [("depth", "content", "depth: content")] + [("depth", n, f"depth: {labels[n]}") for n in names]
    if has_edges:
        groups += [("edges", "content", "edges: content")] + [("edges", n, f"edges: {labels[n]}") for n in names]
    if any("gt" in r for r in rows):
        groups.append(("gt", "content", "BSDS human boundaries"))
    h, w = rows[0]["content"].shape[-2:]
    aspect = h / w
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(cell * len(groups), cell * aspect * len(rows) + 0.6),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, (kind, name, title) in enumerate(groups):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if kind == "rgb":
                img = row["content"] if name == "content" else row["outputs"].get(name)
                if img is not None:
                    ax.imshow(np.asarray(to_image(img[0])))
                else:
                    ax.text(0.5, 0.5, "no image\n(skipped)", ha="center", va="center", fontsize=7, color="gray",
                            transform=ax.transAxes)
            elif kind == "depth" and name in row.get("depth", {}):
                ax.imshow(row["depth"][name].numpy(), cmap="magma", vmin=0, vmax=1)
            elif kind == "edges" and name in row.get("edges", {}):
                ax.imshow(row["edges"][name].numpy(), cmap="gray_r", vmin=0, vmax=1)
            elif kind == "gt" and "gt" in row:
                ax.imshow(row["gt"].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="antialiased")
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(_short(row["image"], 16), fontsize=7)
    fig.suptitle("content | outputs | inverse depth (content-normalized; outputs scale-and-shift aligned, "
                 "bright = near) | HED edge probability", fontsize=9)
    key = legend_text(names, [labels[n] for n in names])
    bottom = 0.0
    if key:
        fig.text(0.01, 0.005, key, fontsize=7, va="bottom", ha="left", wrap=True)
        bottom = min(0.3, (0.15 + 0.12 * key.count("\n")) / fig.get_size_inches()[1])
    fig.tight_layout(rect=(0, bottom, 1, 0.97), pad=0.3, w_pad=0.2, h_pad=0.2)
    path = out / "comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _shared_part(names: list[str], prefix: str) -> int:
    """How much of ``prefix`` (common to ``names``) to drop: all of it when it ends at a separator in every name,
    else up to its last separator, so words stay whole."""
    if all(len(n) == len(prefix) or n[len(prefix)] in SEPARATORS for n in names):
        return len(prefix)
    return max(prefix.rfind(c) for c in SEPARATORS) + 1


def distinct_labels(names: list[str], width: int) -> list[str]:
    """Short labels that keep what tells the names apart: the prefix and the suffix they all share are dropped
    (at separators, so words stay whole; a name that is nothing but the shared part keeps its whole name), then
    a label still over ``width`` is cut at the end; labels that would still collide are numbered instead.
    :func:`legend_text` gives the key to the full names."""
    trimmed = list(names)
    if len(set(names)) > 1:
        start = _shared_part(names, os.path.commonprefix(names))
        rests = [n[start:] for n in names]
        reversed_rests = [r[::-1] for r in rests]
        end = _shared_part(reversed_rests, os.path.commonprefix(reversed_rests))
        trimmed = [r[:len(r) - end].strip(SEPARATORS) or n for r, n in zip(rests, names)]
    labels = [_short(t, width) for t in trimmed]
    if len(set(labels)) < len(labels):
        labels = [f"{i + 1}: {_short(t, width - 3)}" for i, t in enumerate(trimmed)]
    return labels


def legend_text(names: list[str], labels: list[str]) -> str:
    """'label = full name' lines for labels that are not the name itself ('' when every label is)."""
    return "\n".join(f"{label} = {name}" for name, label in zip(names, labels) if label != name)


def bar_charts(result: EvalResult, summary: dict, out: Path, names: list[str] | None = None) -> Path | None:
    """One small bar chart per metric: mean per source (or per group: ``names``, ``summary`` by group) with its
    bootstrap 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = names or result.sources
    columns = [c for c in result.columns if any(summary[s][c.key]["n"] for s in names)]
    if not columns:
        return None
    ncols = min(4, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    labels = distinct_labels(names, 16)
    for ax, column in zip(axes.ravel(), columns):
        means = [summary[s][column.key]["mean"] for s in names]
        lo = [summary[s][column.key]["ci_low"] for s in names]
        hi = [summary[s][column.key]["ci_high"] for s in names]
        err = np.array([[max(0.0, m - a) if np.isfinite(a) else 0 for m, a in zip(means, lo)],
                        [max(0.0, b - m) if np.isfinite(b) else 0 for m, b in zip(means, hi)]])
        x = np.arange(len(names))
        ax.bar(x, np.nan_to_num(means), yerr=err, capsize=3, color=[colors[k % 10] for k in x])
        ax.set_xticks(x, labels, rotation=20, fontsize=7, ha="right")
        ax.set_title(f"{column.key} ({column.better} is better)", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(columns):]:
        ax.axis("off")
    from matplotlib.patches import Patch

    # a legend with every full name: the tick labels keep only the part of the names that differs
    handles = [Patch(color=colors[k % 10], label=f"{label} = {name}" if label != name else name)
               for k, (label, name) in enumerate(zip(labels, names))]
    legend_rows = len(handles) if len(handles) > 2 else 1
    fig.legend(handles=handles, loc="lower left", ncol=1 if legend_rows > 1 else len(handles), fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, min(0.5, (0.1 + 0.17 * legend_rows) / (2.6 * nrows)), 1, 1))
    path = out / "summary_bars.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- Markdown and HTML --------------------------------------------------------------------------------------------
def write_reports(result: EvalResult, summary: dict, comparison: dict | None, out: Path, inputs: dict,
                  figure: Path | None, bars: Path | None,
                  group_sections: list[tuple[str, str, str]] | None = None) -> tuple[Path, Path]:
    """report.md and report.html with the same content: summary, comparison, figures, glossary. A grouped
    evaluation's ``group_sections`` (verdict, groups, their means…) take the per-run summary's place: with
    many runs it would not fit a page (metrics.csv has each run's means)."""
    sections: list[tuple[str, str, str]] = []  # (title, markdown, html)
    n = len(result.images)
    intro = (f"{n} content image(s) from `{inputs.get('content')}`; sources: "
             + ", ".join(f"`{s}`" for s in result.sources)
             + f". Depth network: {result.networks.get('depth')}; edges: {result.networks.get('hed')}; "
             f"loss backbone: {result.networks.get('backbone')}. "
             + ("Values are mean over seeds and images [hierarchical bootstrap 95% CI]" if group_sections else
                "Values are mean [BCa bootstrap 95% CI of the mean over images]")
             + "; ↑ higher is better, ↓ lower is better.")
    sections.append(("", intro, f"<p>{html.escape(intro)}</p>"))
    if result.header:
        sections.append(("Judges and training", "\n".join(f"- {_plain(warning, text, '**')}"
                                                            for warning, text in result.header),
                         "<ul>" + "".join(f"<li>{_plain(warning, html.escape(text), 'b')}</li>"
                                          for warning, text in result.header) + "</ul>"))
    if group_sections:
        sections += group_sections
    else:
        header = ["metric", *result.sources]
        rows = summary_rows(result, summary)
        sections.append(("Summary", md_table(header, rows), html_table(header, rows)))
    if comparison:
        title = f"Comparison: {comparison['candidate']} − {comparison['baseline']}"
        text = ("Paired per-image differences, candidate − baseline; paired BCa bootstrap 95% CI "
                f"({inputs.get('bootstrap', 1000)} resamples over images, seed {inputs.get('seed', 0)}). "
                "'better'/'worse' only when the CI excludes 0, read in the metric's direction.")
        crow = comparison_rows(comparison["rows"])
        warning = small_sample_warning(comparison["rows"])
        md_warning = f"**{warning}**\n\n" if warning else ""
        html_warning = f"<p><b>{html.escape(warning)}</b></p>" if warning else ""
        sections.append((title, md_warning + text + "\n\n" + md_table(COMPARISON_HEADER, crow),
                         html_warning + f"<p>{html.escape(text)}</p>" + html_table(COMPARISON_HEADER, crow)))
    missing = unavailable_text(result)
    if missing:
        mrows = [[name, text] for name, text in missing.items()]
        sections.append(("Metrics not computed", md_table(["metric", "status"], mrows),
                         html_table(["metric", "status"], mrows)))
    if figure is not None:
        cap = ("Per content image: content | outputs | inverse depth of content and outputs (each output's depth "
               "scale-and-shift aligned to the content's, which is normalized to [0, 1]) | HED edge probability.")
        sections.append(("Comparison figure", f"{cap}\n\n![comparison]({figure.name})",
                         f"<p>{html.escape(cap)}</p><img src='{figure.name}' alt='comparison figure'>"))
    if bars is not None:
        sections.append(("Summary charts", f"![summary bars]({bars.name})",
                         f"<img src='{bars.name}' alt='summary bar charts'>"))
    if result.skipped:
        items = "\n".join(f"- {s}" for s in result.skipped)
        sections.append(("Skipped inputs", items,
                         "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in result.skipped) + "</ul>"))
    glossary = columns_markdown(result.columns)
    gl_rows = [[f"{c.key} ({c.label})", c.formula, c.network, c.range, c.better] for c in result.columns]
    sections.append(("Metric definitions", glossary + "\n\nSee docs/metrics.md for the reasoning behind each.",
                     html_table(["metric", "formula", "network", "range", "better"], gl_rows)))
    pictures = ["comparison.png", "summary_bars.png"] + (["tradeoff.png"] if group_sections else [])
    sections.append(("Files", "`metrics.json` (everything), `metrics.csv` (per image + means), "
                     + ", ".join(f"`{name}`" for name in pictures),
                     f"<p>metrics.json, metrics.csv, {', '.join(pictures)}</p>"))

    md = ["# stylekit evaluation", ""]
    for title, body, _ in sections:
        if title:
            md += [f"## {title}", ""]
        md += [body, ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;"
             "padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}")
    body = "".join((f"<h2>{html.escape(t)}</h2>" if t else "") + h for t, _, h in sections)
    html_path = out / "report.html"
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>stylekit evaluation</title>"
                         f"<style>{style}</style></head><body><h1>stylekit evaluation</h1>{body}</body></html>")
    return md_path, html_path


def write_all(result: EvalResult, summary: dict, comparison: dict | None, out: Path,
              inputs: dict, groups: dict | None = None) -> dict[str, Path]:
    """Every output file; ``groups`` (a grouped evaluation's analysis, :func:`.pipeline.analyze_groups`) adds the
    trade-off figure and the group sections, and the figures show one run per group."""
    from . import group_report

    out.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Path] = {}
    if groups is None:
        figure = comparison_figure(result, out)
        bars = bar_charts(result, summary, out)
        sections = None
    else:
        names = [g["name"] for g in groups["groups"]]
        figure = comparison_figure(result, out, names=[g["sources"][0] for g in groups["groups"]])
        bars = bar_charts(result, groups["summary"], out, names=names)
        trade = groups.get("tradeoff")
        tradeoff = group_report.tradeoff_figure(trade, out) if trade else None
        extra = {"tradeoff": tradeoff} if tradeoff else {}
        sections = group_report.sections(result, groups, tradeoff)
    md, page = write_reports(result, summary, comparison, out, inputs, figure, bars, sections)
    return {"json": write_json(result, summary, comparison, out, inputs, groups),
            "csv": write_csv(result, summary, out), "markdown": md, "html": page,
            **({"figure": figure} if figure else {}), **({"bars": bars} if bars else {}), **extra}
