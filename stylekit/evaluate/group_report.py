"""The grouped evaluation's report: the groups, their means, their differences from the baseline group, the
trade-off figure and the frontier verdicts (sections for report.md/.html, rows for the console)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from .runner import MIN_RELIABLE_N, EvalResult
from .tables import arrow, fmt, html_table, md_table

TRADEOFF_FILE = "tradeoff.png"
GROUPS_HEADER = ["group", "arm", "configuration", "seeds (runs)"]
DIFFERENCE_HEADER = ["metric", "group", "baseline mean", "group mean", "Δ (group − baseline, %)", "95% CI of Δ",
                     "seeds (group vs baseline)", "images", "verdict"]
GAP_HEADER = ["configuration", "x", "y", "frontier y at x", "gap", "95% CI of gap", "df", "verdict"]
ARM_HEADER = ["arm", "configurations inside the range", "mean gap", "95% CI", "df", "verdict"]


def _ci(row: dict[str, Any]) -> str:
    return f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def _signed(value: float) -> str:
    return f"{value:+.4g}" if math.isfinite(value) else "–"


def _df(value: float) -> str:
    return "∞" if value is None or value == math.inf else ("–" if not math.isfinite(value) else f"{value:.1f}")


def group_rows(analysis: dict[str, Any]) -> list[list[str]]:
    return [[g["name"], g["arm"], g["config"] or "–", f"{len(g['sources'])}: " + ", ".join(g["sources"])]
            for g in analysis["groups"]]


def summary_rows(result: EvalResult, analysis: dict[str, Any]) -> list[list[str]]:
    """Rows: metric (with ↑/↓), then 'mean [95% CI]' per group."""
    rows = []
    for column in result.columns:
        cells = [f"{column.key} {arrow(column.better)}"]
        for group in analysis["groups"]:
            s = analysis["summary"][group["name"]][column.key]
            cells.append(f"{fmt(s['mean'])} {_ci(s)}" if s["n"] else "–")
        rows.append(cells)
    return rows


def _verdict_text(row: dict[str, Any]) -> str:
    if row["verdict"] in ("better", "worse") and row["n"] < MIN_RELIABLE_N:
        return f"{row['verdict']} (unreliable: n < {MIN_RELIABLE_N} images)"
    return row["verdict"]


def _percent(value: float) -> str:
    return f" ({value:+.1%})" if math.isfinite(value) else ""


def difference_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[f"{r['metric']} {arrow(r['better'])}", r["group"], fmt(r["baseline_mean"]), fmt(r["group_mean"]),
             _signed(r["diff"]) + _percent(r["relative"]), _ci(r), f"{r['seeds'][1]} vs {r['seeds'][0]}",
             str(r["n"]), _verdict_text(r)] for r in rows]


def gap_rows(trade: dict[str, Any]) -> list[list[str]]:
    rows = []
    for g in trade["gaps"]:
        verdict = g["verdict"] + (f" ({g['extrapolated_share']:.0%} of replicates outside the range)"
                                  if g["inside"] and g["extrapolated_share"] > 0.05 else "")
        rows.append([g["group"], fmt(g["x"]), fmt(g["y"]), fmt(g["frontier_y"]), _signed(g["gap"]), _ci(g),
                     _df(g["df"]), verdict])
    return rows


def arm_rows(trade: dict[str, Any]) -> list[list[str]]:
    return [[a["arm"], f"{a['configs_inside']} of {a['configs']}", _signed(a["gap"]), _ci(a), _df(a["df"]),
             a["verdict"]] for a in trade["arm_verdicts"]]


# -- the figure ----------------------------------------------------------------------------------------------------
def tradeoff_figure(trade: dict[str, Any], out: Path) -> Path | None:
    """Runs as dots, configurations as their mean with 95% CIs on both axes, each arm a line through its
    configurations sorted by x; the reference arm's line is the frontier. A lower-is-better y is drawn inverted,
    so 'above the frontier' is better on the page too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not trade["configs"]:
        return None
    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    for index, arm in enumerate(trade["arms"]):
        color = f"C{index % 10}"
        runs = [r for r in trade["runs"] if r["arm"] == arm]
        ax.scatter([r["x"] for r in runs], [r["y"] for r in runs], s=14, color=color, alpha=0.35, linewidths=0)
        configs = sorted((c for c in trade["configs"] if c["arm"] == arm), key=lambda c: c["x"]["mean"])
        xs, ys = [c["x"]["mean"] for c in configs], [c["y"]["mean"] for c in configs]
        xerr = [[max(0.0, c["x"]["mean"] - c["x"]["ci_low"]) if math.isfinite(c["x"]["ci_low"]) else 0 for c in configs],
                [max(0.0, c["x"]["ci_high"] - c["x"]["mean"]) if math.isfinite(c["x"]["ci_high"]) else 0 for c in configs]]
        yerr = [[max(0.0, c["y"]["mean"] - c["y"]["ci_low"]) if math.isfinite(c["y"]["ci_low"]) else 0 for c in configs],
                [max(0.0, c["y"]["ci_high"] - c["y"]["mean"]) if math.isfinite(c["y"]["ci_high"]) else 0 for c in configs]]
        frontier = arm == trade["reference_arm"] and len(configs) > 1
        label = f"{arm} (frontier)" if frontier else arm
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o-" if len(configs) > 1 else "o", color=color, lw=2.2 if
                    frontier else 1.4, ms=6, capsize=3, label=label)
        for c, x, y in zip(configs, xs, ys):
            if c["config"]:
                ax.annotate(c["config"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7, color=color)
    if trade["y_better"] == "lower":
        ax.invert_yaxis()
    if trade["x_better"] == "lower":
        ax.invert_xaxis()  # more stylized to the right: the trade-off reads from faint (left) to strong (right)
    ax.set_xlabel(f"{trade['x']} (style distance, {trade['x_better']} = closer to the painting)  → more stylized",
                  fontsize=9)
    ax.set_ylabel(f"{trade['y']} ({trade['y_better']} is better)", fontsize=9)
    ax.set_title(f"{trade['y']} at equal style ({trade['images']} images)\nruns: dots; configurations: mean over "
                 "seeds with 95% CIs; arms: lines", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = out / TRADEOFF_FILE
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- report sections ------------------------------------------------------------------------------------------------
def _section(title: str, text: str, header: list[str] | None = None, rows: list[list[str]] | None = None
             ) -> tuple[str, str, str]:
    md = text + (("\n\n" + md_table(header, rows)) if header and rows else "")
    page = f"<p>{html.escape(text)}</p>" + (html_table(header, rows) if header and rows else "")
    return title, md, page


def sections(result: EvalResult, analysis: dict[str, Any], figure: Path | None) -> list[tuple[str, str, str]]:
    """The grouped report's sections, in reading order: the verdict first, then what it rests on."""
    out: list[tuple[str, str, str]] = []
    trade = analysis.get("tradeoff")
    resamples, seed = analysis["resamples"], analysis["seed"]
    method = (f"Hierarchical bootstrap ({resamples} replicates, seed {seed}): the images resampled once for every "
              "group (paired), each group's seeds resampled within it, deviations inflated by √(S/(S−1)); "
              "CI = mean ± t·SE on Satterthwaite's degrees of freedom (see docs/metrics.md, Groups of runs).")
    if trade is not None and trade.get("sentence"):
        text = trade["sentence"]
        out.append(("Verdict at equal style", f"**{text}**", f"<p><b>{html.escape(text)}</b></p>"))
    notes = analysis.get("notes", [])
    out.append(_section("Groups", "Each group is one configuration; each of its runs one seed. " + " ".join(notes),
                        GROUPS_HEADER, group_rows(analysis)))
    out.append(_section("Summary by group", "Mean over seeds and images [95% CI]. " + method,
                        ["metric", *[g["name"] for g in analysis["groups"]]], summary_rows(result, analysis)))
    rows = analysis.get("comparison") or []
    if rows:
        out.append(_section(f"Differences from {analysis['baseline']}",
                            "Each group's mean minus the baseline group's, paired on images, seeds resampled within "
                            "each group. 'better'/'worse' only when the CI excludes 0, read in the metric's "
                            "direction; 'n/a' when a group's seed variation is unknown.",
                            DIFFERENCE_HEADER, difference_rows(rows)))
    if trade is not None and trade["configs"]:
        text = (f"x = {trade['x_note']}; y = {trade['y']}. Each arm is a line through its configurations sorted by "
                f"x; the {trade['reference_arm']} arm's line is the frontier. Gap = y minus the frontier at the "
                "same x (positive = better). 'outside the range': x lies beyond the frontier's configurations, "
                "where a verdict would be extrapolation.")
        md = text + (f"\n\n![trade-off]({figure.name})" if figure else "")
        page = f"<p>{html.escape(text)}</p>" + (f"<img src='{figure.name}' alt='trade-off figure'>" if figure else "")
        if trade["gaps"]:
            md += "\n\n" + md_table(GAP_HEADER, gap_rows(trade)) + "\n\n" + md_table(ARM_HEADER, arm_rows(trade))
            page += html_table(GAP_HEADER, gap_rows(trade)) + html_table(ARM_HEADER, arm_rows(trade))
        out.append(("Trade-off and frontier", md, page))
    return out
