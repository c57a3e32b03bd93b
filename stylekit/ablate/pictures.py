"""The grid's pictures: a contact sheet (rows = runs, columns = the same images stylized) and the
trade-off plot (each final loss or eval metric against each varied parameter, mean ± std over seeds)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..runs.folder import RunDir
from ..runs.records import RunRecord
from ..runs.tables import eval_columns, term_columns
from .grid import Grid, GridRun

def contact_images(grid: Grid, source: Path | None, count: int) -> list[Path]:
    """``--contact-images`` (a folder or file), else the recipe's sample images, else the first training images."""
    from ..data import list_images

    if source is not None:
        files = list_images(source)
    elif grid.recipe.log.sample_images:
        files = [Path(p) for p in grid.recipe.log.sample_images]
    else:
        files = list_images(grid.recipe.data.root, grid.recipe.data.extensions)
    return files[:count]


def contact_sheet(grid: Grid, records: Sequence[RunRecord], images: Sequence[Path], out: Path,
                  size: int = 256, device: str = "cpu") -> Path:
    """Rows = runs (labeled with what varies), columns = the same images stylized by each run."""
    from PIL import Image

    from ..checkpoint import load_model
    from ..data import load_image
    from ..hardware import pick_device
    from ..stylize import stylize_tensor
    from ..viz import image_grid

    inputs = [load_image(p, size) for p in images]
    rows: list[list[Any]] = [[img[0] for img in inputs]]
    titles = ["content"]
    target = pick_device(device)
    for run, rec in zip(grid.runs, records):
        # what varies, then the final unweighted terms: the sheet reads on its own, without the table
        label = run.label.replace("; ", "\n") + "".join(f"\n {k} {v:.4g}" for k, v in list(rec.final.items())[:5])
        if RunDir(rec.path).latest_checkpoint() is None:
            rows.append([Image.new("RGB", (size, size), (225, 225, 225)) for _ in inputs])
            titles.append(f"{label}\n({rec.state}, no model)")
            continue
        model = load_model(rec.path).to(target)
        rows.append([stylize_tensor(model, img)[0] for img in inputs])
        titles.append(label + ("" if rec.state == "finished" else f"\n({rec.state} at {rec.step})"))
    cell = min(size, 256)
    grid_image = image_grid(rows, column_titles=[p.stem[:24] for p in images], row_titles=titles, cell=cell,
                            title=f"{grid.recipe.name}: each row is one run, each column one input image")
    grid_image.save(out)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tradeoff_plot(grid: Grid, records: Sequence[RunRecord], out: Path) -> Path | None:
    """Final unweighted losses (and eval metrics) against each varied parameter; mean ± std over seeds.

    One row of panels per parameter, one panel per metric. Runs that differ in other
    parameters are separate lines, so a 2-D sweep reads as a family of curves.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [(t, "final") for t in term_columns(records)] + [(k, "eval") for k in eval_columns(records)]
    params = [s.key for s in grid.vary] + (["without"] if grid.without_each else [])
    if not metrics or not params:
        return None

    def value_text(run: GridRun, param: str) -> str:
        if param == "without":
            return "without " + "+".join(run.without) if run.without else "all terms"
        return run.texts[param]

    def group_label(others: list[str], key: tuple) -> str:
        return "; ".join(v if p == "without" else f"{p.removeprefix('losses.')}={v}" for p, v in zip(others, key))

    fig, axes = plt.subplots(len(params), len(metrics), figsize=(3.4 * len(metrics) + 0.6, 3.0 * len(params) + 0.8),
                             squeeze=False)
    seeds_note = f"mean ± std over {len(grid.seeds)} seeds" if grid.seeds else "one seed"
    for row, param in enumerate(params):
        others = [p for p in params if p != param]
        numeric = param != "without" and all(_is_number(r.values[param]) for r in grid.runs)
        categories = list(dict.fromkeys(value_text(r, param) for r in grid.runs))
        groups: dict[tuple, list[tuple[GridRun, RunRecord]]] = {}
        for run, rec in zip(grid.runs, records):
            groups.setdefault(tuple(value_text(run, p) for p in others), []).append((run, rec))
        legend: dict[str, Any] = {}
        for col, (metric, source) in enumerate(metrics):
            ax = axes[row][col]
            any_point = False
            for g_index, (group_key, members) in enumerate(groups.items()):
                by_x: dict[Any, list[float]] = {}
                for run, rec in members:
                    value = (rec.final if source == "final" else rec.eval).get(metric)
                    if value is None or not math.isfinite(value) or rec.step == 0:
                        continue
                    x = float(run.values[param]) if numeric else categories.index(value_text(run, param))
                    by_x.setdefault(x, []).append(value)
                if not by_x:
                    continue
                any_point = True
                xs = sorted(by_x)
                means = [sum(by_x[x]) / len(by_x[x]) for x in xs]
                stds = [(sum((v - m) ** 2 for v in by_x[x]) / max(1, len(by_x[x]) - 1)) ** 0.5 if len(by_x[x]) > 1
                        else 0.0 for x, m in zip(xs, means)]
                color = f"C{g_index % 10}"  # one color per group in every panel
                line = ax.errorbar(xs, means, yerr=stds if any(stds) else None, marker="o", ms=4, capsize=3,
                                   lw=1.5, color=color)
                legend.setdefault(group_label(others, group_key), line)
                if any(stds) and numeric and len(xs) > 1:
                    lo = [m - s for m, s in zip(means, stds)]
                    hi = [m + s for m, s in zip(means, stds)]
                    ax.fill_between(xs, lo, hi, alpha=0.15, color=color)
            if not any_point:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="gray")
            if numeric:
                xs_all = sorted({float(r.values[param]) for r in grid.runs})
                positive = [x for x in xs_all if x > 0]
                if positive and max(positive) / min(positive) >= 20:
                    if len(positive) == len(xs_all):
                        ax.set_xscale("log")
                    elif min(xs_all) >= 0:
                        ax.set_xscale("symlog", linthresh=min(positive))
                ax.set_xticks(xs_all)
                ax.set_xticklabels(list(dict.fromkeys(r.texts[param] for r in sorted(
                    grid.runs, key=lambda r: float(r.values[param])))), rotation=0)
                ax.minorticks_off()
            else:
                ax.set_xticks(range(len(categories)))
                ax.set_xticklabels(categories, rotation=20 if max(map(len, categories)) > 8 else 0,
                                   ha="right" if max(map(len, categories)) > 8 else "center")
                ax.set_xlim(-0.5, len(categories) - 0.5)
            ys = [v for rec in records for v in [(rec.final if source == "final" else rec.eval).get(metric)]
                  if v is not None and math.isfinite(v)]
            if ys and min(ys) > 0 and max(ys) / min(ys) > 30:
                ax.set_yscale("log")
            ax.set_title(metric if source == "final" else f"eval: {metric}", fontsize=10)
            ax.set_xlabel(param.removeprefix("losses."), fontsize=9)
            if col == 0:
                ax.set_ylabel("final unweighted value", fontsize=9)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
        if len(legend) > 1:  # outside the last panel, so it never hides points
            axes[row][-1].legend(list(legend.values()), list(legend), fontsize=8, loc="upper left",
                                 bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle(f"{grid.recipe.name}: final losses vs the varied parameters ({seeds_note})", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
