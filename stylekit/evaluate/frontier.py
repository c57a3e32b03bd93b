"""Style against structure: each arm's trade-off line, and whether an arm lies above another's frontier.

A loss term that keeps depth may do it by stylizing less: more content weight keeps depth too. So the depth term
is judged *at equal style*: x = a style distance from a judge independent of the models' training (default: the
first of :data:`STYLE_JUDGES` computed here that shares no weights with any evaluated model's networks), y = a
structure score (default ``depth_ordinal``).

- Runs are points (their mean over images); configurations are their seeds' mean, with hierarchical-bootstrap
  CIs on both axes; an arm is the line through its configurations, sorted by x.
- The *frontier* is the reference arm's line (default: the first arm, e.g. Johnson's at several content weights):
  the piecewise-linear curve f through its configurations' means. Not their upper envelope: a maximum of noisy
  means is biased upward. Past its ends every bootstrap replicate extends f with the point estimate's end slopes
  (a replicate's own end segment is nearly vertical when two configurations are almost equally stylized).
- For a configuration c of another arm, the *gap* is g = y_c − f(x_c) (sign flipped when lower y is better, so
  g > 0 always means better structure at the same style). Its CI comes from one hierarchical bootstrap of x and
  y together (seeds resampled within every configuration, images shared), so the uncertainty of both curves and
  of x_c is in it. Verdict: **above** when the CI lies above 0, **below** when under it, **not shown** otherwise,
  **outside the range** when x_c lies outside the reference configurations' x range (extrapolation is not a
  verdict), **n/a** when the seed variation of a configuration involved is unknown (one run, none to borrow).
- An arm's verdict: the mean gap over its configurations inside the range, with its CI from the same replicates.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

from ..metrics import Column, Metric
from .groups import DEFAULT_Y, Group, values_by_group
from .hierarchical import NONE, HierarchicalBootstrap, Interval, end_slopes, frontier_gap, inside_range
from .judges import Trained, shared_with, sharing_text
from .runner import EvalResult, EvaluationError

#: the style judges tried for the x axis, best first: Lite2's weights are held by no stylekit network, the Gabor
#: pyramid has none, Lite0 is the encoder of effnet_depth_lite (the default depth term's network)
STYLE_JUDGES = ("texture_lite2", "texture_gabor", "texture_lite0")
#: a note is added when more replicates than this put the configuration outside the frontier's range
EDGE_SHARE = 0.05


def choose_style_axis(result: EvalResult, trained: Sequence[Trained], wanted: str | None = None
                      ) -> tuple[str | None, str, bool]:
    """The x column, a sentence on how it was chosen, and whether it is independent of training."""
    computed = {c.key for c in result.columns}
    owner = {c.key: m for m in result.metrics for c in m.columns}
    if wanted is not None:
        if wanted not in computed:
            raise EvaluationError(f"--trade-off-x {wanted}: no such column was computed here "
                                  f"({result.unavailable.get(wanted, 'not a metric column')}); computed: "
                                  f"{', '.join(sorted(computed))}")
        shared = _shared(owner.get(wanted), trained)
        return wanted, f"{wanted} (chosen with --trade-off-x)" + (f"; NOT independent: it shares {shared}"
                                                                  if shared else ""), not shared
    def why_not(key: str) -> str:
        if key in computed:
            return f"{key} shares {_shared(owner.get(key), trained)}"
        return f"{key}: {result.unavailable.get(key, 'not asked for (--metrics)')}"

    available = [key for key in STYLE_JUDGES if key in computed]
    for key in available:
        if not _shared(owner.get(key), trained):
            passed = "; ".join(why_not(k) for k in STYLE_JUDGES[:STYLE_JUDGES.index(key)])
            return key, f"{key}, independent of the models' training" + (f" (passed over: {passed})" if passed
                                                                             else ""), True
    if available:
        return available[0], f"{available[0]}; NOT independent: {why_not(available[0])}", False
    return None, f"no style judge was computed ({'; '.join(why_not(k) for k in STYLE_JUDGES)})", False


def _shared(metric: Metric | None, trained: Iterable[Trained]) -> str:
    if metric is None:
        return ""
    shared = shared_with(metric.weights_used(), trained)
    return sharing_text(shared) if shared else ""


def _column(result: EvalResult, key: str) -> Column:
    return next(c for c in result.columns if c.key == key)


def _axis(interval: Interval) -> dict[str, float]:
    return {"mean": interval.estimate, "ci_low": interval.low, "ci_high": interval.high}


def _verdict(interval: Interval, inside: bool) -> str:
    if not inside:
        return "outside the range"
    if interval.unknown_seeds or not math.isfinite(interval.low):
        return "n/a"
    if interval.low > 0:
        return "above"
    if interval.high < 0:
        return "below"
    return "not shown"


def tradeoff(result: EvalResult, groups: Sequence[Group], x: str, y: str = DEFAULT_Y,
             reference_arm: str | None = None, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Points, arm lines and frontier verdicts (module docstring); everything metrics.json and the report need."""
    if y not in {c.key for c in result.columns}:
        raise EvaluationError(f"--trade-off-y {y}: no such column was computed here "
                              f"({result.unavailable.get(y, 'not a metric column')})")
    arms = list(dict.fromkeys(g.arm for g in groups))
    reference_arm = reference_arm or arms[0]
    if reference_arm not in arms:
        raise EvaluationError(f"--frontier-arm {reference_arm}: no such arm; the arms are {', '.join(arms)}")
    better = _column(result, y).better
    sign = 1.0 if better == "higher" else -1.0
    values, images = values_by_group(result, groups, [x, y])
    out: dict[str, Any] = {"x": x, "y": y, "y_better": better, "x_better": _column(result, x).better,
                           "reference_arm": reference_arm, "arms": arms, "images": len(images),
                           "resamples": resamples, "seed": seed, "runs": [], "configs": [], "gaps": [],
                           "arm_verdicts": []}
    for group, runs in zip(groups, values):
        for source, run in zip(group.sources, runs):
            out["runs"].append({"source": source, "group": group.name, "arm": group.arm,
                                "x": float(run[:, 0].mean()) if run.size else math.nan,
                                "y": float(run[:, 1].mean()) if run.size else math.nan})
    if not images:
        out["sentence"] = f"No image has both {x} and {y} for every run: no trade-off to show."
        return out
    boot = HierarchicalBootstrap(values, [g.arm for g in groups], resamples, seed)
    for k, group in enumerate(groups):
        out["configs"].append({"group": group.name, "arm": group.arm, "config": group.config,
                               "seeds": len(group.sources), "seed_variation": boot.sources[k],
                               "x": _axis(boot.interval(lambda m, k=k: m[..., k, 0], [k])),
                               "y": _axis(boot.interval(lambda m, k=k: m[..., k, 1], [k]))})
    reference = [k for k, g in enumerate(groups) if g.arm == reference_arm]
    if len(reference) < 2:
        out["sentence"] = (f"The {reference_arm} arm has {len(reference)} configuration: a frontier needs two or "
                           f"more (train it at several content or style weights), so no arm is compared with it.")
        return out
    if len(arms) == 1:
        out["sentence"] = (f"One arm ({reference_arm}): its trade-off line is drawn; a verdict needs a second arm "
                           "to compare with its frontier.")
        return out
    lo, hi = float(boot.point[reference, 0].min()), float(boot.point[reference, 0].max())
    out["reference_range"] = [lo, hi]
    replicates = boot.replicates("all")
    # past the frontier's ends every replicate extends it with the point estimate's end slopes (bounded; docstring)
    slopes = end_slopes(boot.point[reference, 0], boot.point[reference, 1])
    for arm in arms:
        if arm == reference_arm:
            continue
        members = [k for k, g in enumerate(groups) if g.arm == arm]
        inside_members = []
        for k in members:
            interval = boot.interval(frontier_gap(reference, k, sign=sign, slopes=slopes), involves=[*reference, k])
            inside = lo <= boot.point[k, 0] <= hi
            inside_members += [k] if inside else []
            share = float(1.0 - inside_range(replicates, reference, k).mean())
            curve = boot.point[k, 1] - sign * interval.estimate
            out["gaps"].append({"group": groups[k].name, "arm": arm, "x": float(boot.point[k, 0]),
                                "y": float(boot.point[k, 1]), "frontier_y": float(curve), "gap": interval.estimate,
                                "ci_low": interval.low, "ci_high": interval.high, "se": interval.se,
                                "df": interval.df, "inside": bool(inside), "extrapolated_share": share,
                                "verdict": _verdict(interval, inside)})
        out["arm_verdicts"].append(_arm_verdict(boot, arm, reference, inside_members, sign, len(members), slopes))
    out["sentence"] = " ".join(_sentence(v, out) for v in out["arm_verdicts"])
    return out


def _arm_verdict(boot: HierarchicalBootstrap, arm: str, reference: list[int], members: list[int], sign: float,
                 total: int, slopes: tuple[float, float]) -> dict[str, Any]:
    """The mean gap over the arm's configurations inside the frontier's range."""
    verdict: dict[str, Any] = {"arm": arm, "configs_inside": len(members), "configs": total}
    if not members:
        return {**verdict, "gap": math.nan, "ci_low": math.nan, "ci_high": math.nan, "df": math.nan,
                "verdict": "outside the range"}
    gaps = [frontier_gap(reference, k, sign=sign, slopes=slopes) for k in members]
    interval = boot.interval(lambda m: np.mean([g(m) for g in gaps], axis=0), involves=[*reference, *members])
    unknown = [k for k in (*reference, *members) if boot.sources[k] == NONE]
    return {**verdict, "gap": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "se": interval.se, "df": interval.df, "verdict": _verdict(interval, True), "unknown_seeds": len(unknown)}


def _signed(value: float) -> str:
    return f"{value:+.4f}" if math.isfinite(value) else "–"


def _sentence(arm: dict[str, Any], trade: dict[str, Any]) -> str:
    """One sentence per arm: its verdict against the reference arm's frontier, with the numbers behind it."""
    ref, y, x = trade["reference_arm"], trade["y"], trade["x"]
    where = (f"averaged over its {arm['configs_inside']} configuration(s) inside the {ref} arm's {x} range"
             + (f" ({arm['configs'] - arm['configs_inside']} outside)" if arm["configs_inside"] < arm["configs"]
                else ""))
    numbers = (f"gap in {y} {_signed(arm['gap'])} [{_signed(arm['ci_low'])}, {_signed(arm['ci_high'])}] {where}; "
               f"hierarchical bootstrap over seeds and {trade['images']} images")
    lo, hi = trade.get("reference_range", [math.nan, math.nan])
    return {
        "above": f"At equal style ({x}), the {arm['arm']} arm lies above the {ref} arm's frontier: better {y} "
                 f"than the {ref} arm reaches at the same style distance ({numbers}).",
        "below": f"At equal style ({x}), the {arm['arm']} arm lies below the {ref} arm's frontier: worse {y} "
                 f"than the {ref} arm reaches at the same style distance ({numbers}).",
        "not shown": f"At equal style ({x}), the {arm['arm']} arm is not shown to lie above or below the {ref} arm's "
                     f"frontier ({numbers}).",
        "outside the range": f"The {arm['arm']} arm's {x} lies outside the {ref} arm's range [{lo:.4g}, {hi:.4g}] "
                             f"in every configuration: no verdict (extrapolation is not one); train the {ref} arm "
                             "at content or style weights that reach its style distance.",
        "n/a": f"The {arm['arm']} arm cannot be compared with the {ref} arm's frontier: a configuration involved "
               f"has one run and no seed variation to borrow ({numbers}).",
    }[arm["verdict"]]
