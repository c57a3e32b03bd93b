"""Groups of runs in ``stylekit evaluate``: arms, their configurations, and each configuration's seeds.

A *group* is one configuration: every run of the same recipe and weights, one per seed. An *arm* is a line of
configurations (the Johnson arm at three content weights; the depth-aware arm at three depth weights). Groups come
from ``--group ARM[/CONFIG]=RUN,RUN…`` or from an ablation folder (``--groups-from GRID``: its runs grouped by
arm and configuration minus the seed). Per group and metric the report gives the mean over seeds and images with
a hierarchical-bootstrap CI (:mod:`.hierarchical`), and each group's difference from a baseline group, paired on
images, with a verdict.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .hierarchical import NONE, HierarchicalBootstrap, Interval
from .runner import MIN_RELIABLE_N, EvalResult, EvaluationError

#: grid.json of an ablation folder (the name :mod:`stylekit.ablate.grid` writes; not imported: evaluate sits
#: beside ablate, not above it)
GRID_FILE = "grid.json"
#: a run's seed as `stylekit ablate` labels it
_SEED_LABEL = re.compile(r"^seed -?\d+$")


#: the structure score the trade-off puts on its y axis by default
DEFAULT_Y = "depth_ordinal"


@dataclass
class Group:
    """One configuration: its runs (one per seed), within an arm."""

    arm: str
    config: str  # '' when the arm has one configuration
    paths: list[str] = field(default_factory=list)
    #: the evaluation's source names of its runs, in ``paths`` order (set once they are opened)
    sources: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.arm}/{self.config}" if self.config else self.arm


@dataclass
class GroupPlan:
    """What a grouped evaluation compares: the groups (``--group``, ``--groups-from``), the baseline group of the
    differences (``--baseline-group``, default the first), the trade-off's axes (``--trade-off-x``, default the
    first independent style judge; ``--trade-off-y``) and the arm whose line is the frontier (``--frontier-arm``,
    default the first arm)."""

    groups: list[Group]
    baseline: str | None = None
    x: str | None = None
    y: str = DEFAULT_Y
    frontier_arm: str | None = None
    #: runs an ablation folder held that are left out (not finished), for the report
    left_out: list[str] = field(default_factory=list)

    def check(self, columns: Sequence[str]) -> None:
        """Names that cannot work, found before any image is stylized."""
        names = [g.name for g in self.groups]
        arms = list(dict.fromkeys(g.arm for g in self.groups))
        if not self.groups:
            raise EvaluationError("no groups: give --group ARM=RUN,RUN… or --groups-from GRID_DIR")
        if self.baseline is not None and self.baseline not in names:
            raise EvaluationError(f"--baseline-group {self.baseline}: no such group; the groups are {', '.join(names)}")
        if self.frontier_arm is not None and self.frontier_arm not in arms:
            raise EvaluationError(f"--frontier-arm {self.frontier_arm}: no such arm; the arms are {', '.join(arms)}")
        for flag, key in (("--trade-off-x", self.x), ("--trade-off-y", self.y)):
            if key is not None and key not in columns:
                raise EvaluationError(f"{flag} {key}: no metric computes a column of that name here; the columns "
                                      f"are {', '.join(columns)} (pick metrics with --metrics)")


def _members(text: str, flag: str) -> list[str]:
    """Paths from ``RUN,RUN…`` with globs: a text that is itself a path stays whole (run names hold commas)."""
    pieces = [text] if Path(text).expanduser().exists() else [p.strip() for p in text.split(",") if p.strip()]
    paths: list[str] = []
    for piece in pieces:
        matches = sorted(glob.glob(str(Path(piece).expanduser()))) if glob.has_magic(piece) else [piece]
        if not matches:
            raise EvaluationError(f"{flag}: {piece!r} matches no file or folder; give run folders, checkpoints or "
                                  "shipped model names, separated by commas (globs such as runs/johnson-seed* work)")
        paths += matches
    return paths


def parse_group(text: str) -> Group:
    """``ARM[/CONFIG]=PATH[,PATH…]``, e.g. ``johnson/cw2=runs/a,runs/b``: the name ends at the first '=' (run
    names may hold '=' and ',', group names may not)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise EvaluationError(f"--group {text!r}: expected ARM=RUN,RUN… or ARM/CONFIG=RUN,RUN…, e.g. "
                              "--group johnson=runs/johnson-s1,runs/johnson-s2,runs/johnson-s3 (one run per seed)")
    arm, _, config = name.partition("/")
    if not arm.strip():
        raise EvaluationError(f"--group {text!r}: the arm's name is empty; write ARM/CONFIG=RUN,…")
    return Group(arm.strip(), config.strip(), _members(rest.strip(), f"--group {name}"))


def _setting(entry: dict[str, Any]) -> str:
    """A grid run's configuration minus its seed: its recorded 'setting', else its label without 'seed N'."""
    if "setting" in entry:
        return str(entry["setting"])
    parts = [p for p in str(entry.get("label", "")).split("; ") if not _SEED_LABEL.match(p.strip())]
    return "; ".join(parts)


def groups_from_grid(folder: str | Path) -> tuple[list[Group], list[str]]:
    """The groups of an ablation folder (``stylekit ablate -o FOLDER``): its runs grouped by arm (the folder's
    name when the grid has no arms) and configuration minus the seed. Runs that did not finish are left out and
    listed (an unfinished run has trained fewer steps than the others)."""
    from ..runs.folder import RunDir
    from ..runs.records import read_run

    folder = Path(folder).expanduser()
    plan = folder / GRID_FILE
    if not plan.is_file():
        raise EvaluationError(f"--groups-from {folder}: no {GRID_FILE} there; give the folder `stylekit ablate` "
                              "wrote (its -o GRID_DIR), or list runs with --group ARM=RUN,RUN…")
    try:
        entries = json.loads(plan.read_text())["runs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EvaluationError(f"--groups-from {folder}: {GRID_FILE} is unreadable ({type(exc).__name__}: {exc}); "
                              "re-run the same `stylekit ablate` command with --summary-only to rewrite it") from None
    groups: dict[tuple[str, str], Group] = {}
    left_out: list[str] = []
    for entry in entries:
        run_dir = folder / str(entry["name"])
        record = read_run(run_dir)
        if record.state != "finished" or RunDir(run_dir).latest_checkpoint() is None:
            left_out.append(f"{run_dir}: {record.state}" + (f" at step {record.step}" if record.step else "")
                            + " (not finished: left out of its group)")
            continue
        arm = str(entry.get("arm") or folder.name)
        setting = _setting(entry)
        config = "" if setting in ("", "baseline") else setting
        groups.setdefault((arm, config), Group(arm, config)).paths.append(str(run_dir))
    if not groups:
        raise EvaluationError(f"--groups-from {folder}: none of its {len(entries)} run(s) has finished; finish "
                              "them with the same `stylekit ablate` command (it resumes interrupted runs)")
    return list(groups.values()), left_out


def merge_groups(groups: Sequence[Group]) -> list[Group]:
    """Groups with the same name become one (its runs are more seeds); a run in two groups is an error."""
    merged: dict[str, Group] = {}
    for group in groups:
        target = merged.setdefault(group.name, Group(group.arm, group.config))
        target.paths += group.paths
    seen: dict[str, str] = {}
    for group in merged.values():
        for path in group.paths:
            key = str(Path(path).expanduser().resolve()) if Path(path).expanduser().exists() else path
            if key in seen:
                raise EvaluationError(f"{path} is in two groups ({seen[key]} and {group.name}); a run is one seed of "
                                      "one configuration")
            seen[key] = group.name
    return list(merged.values())


# -- statistics -----------------------------------------------------------------------------------------------
def values_by_group(result: EvalResult, groups: Sequence[Group], keys: Sequence[str]
                    ) -> tuple[list[np.ndarray], list[str]]:
    """Per group its runs × images × keys array, on the images every run of every group has all ``keys`` for
    (so comparisons are paired on images), and those images."""
    per_run = {s: np.stack([result.values(s, k) for k in keys], -1) for g in groups for s in g.sources}
    ok = np.all([np.isfinite(v).all(-1) for v in per_run.values()], axis=0)
    images = [image for image, keep in zip(result.images, ok) if keep]
    return [np.stack([per_run[s][ok] for s in g.sources]) for g in groups], images


def _bootstrap(result: EvalResult, groups: Sequence[Group], keys: Sequence[str], resamples: int, seed: int
               ) -> tuple[HierarchicalBootstrap | None, int]:
    values, images = values_by_group(result, groups, keys)
    if not images:
        return None, 0
    return HierarchicalBootstrap(values, [g.arm for g in groups], resamples, seed), len(images)


def _stats(interval: Interval, images: int, seeds: int, variation: str) -> dict[str, Any]:
    return {"mean": interval.estimate, "ci_low": interval.low, "ci_high": interval.high, "se": interval.se,
            "df": interval.df, "n": images, "seeds": seeds, "seed_variation": variation}


def summarize_groups(result: EvalResult, groups: Sequence[Group], resamples: int = 1000, seed: int = 0
                     ) -> dict[str, dict[str, dict[str, Any]]]:
    """Per group and metric: the mean over seeds and images with its hierarchical-bootstrap 95% CI."""
    summary: dict[str, dict[str, dict[str, Any]]] = {g.name: {} for g in groups}
    for column in result.columns:
        boot, n = _bootstrap(result, groups, [column.key], resamples, seed)
        for k, group in enumerate(groups):
            if boot is None:
                summary[group.name][column.key] = _stats(Interval(*[float("nan")] * 5), 0, len(group.sources), "")
                continue
            interval = boot.interval(lambda m, k=k: m[..., k, 0], involves=[k])
            summary[group.name][column.key] = _stats(interval, n, len(group.sources), boot.sources[k])
    return summary


def verdict(interval: Interval, better: str) -> str:
    """'better'/'worse' (read in the metric's direction) when the CI excludes 0; 'no clear difference' when it
    does not; 'n/a' when there is no CI or a group's seed variation is unknown (one run, none to borrow from)."""
    if interval.unknown_seeds or not np.isfinite(interval.low):
        return "n/a"
    if not interval.excludes(0.0):
        return "no clear difference"
    return "better" if (interval.estimate > 0) == (better == "higher") else "worse"


def compare_groups(result: EvalResult, groups: Sequence[Group], baseline: str, resamples: int = 1000,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Each other group minus ``baseline``, per metric: the difference of the means over seeds and images,
    paired on images (one image resample for both), seeds resampled within each group; and the same relative to
    the baseline's mean (``relative``, a fraction)."""
    names = [g.name for g in groups]
    b = names.index(baseline)
    rows = []
    for column in result.columns:
        if column.key == "bsds_f_content":  # a property of the content image, the same for every run
            continue
        boot, n = _bootstrap(result, groups, [column.key], resamples, seed)
        for k, group in enumerate(groups):
            if k == b:
                continue
            if boot is None:
                interval = relative = Interval(*[float("nan")] * 5)
            else:
                interval = boot.interval(lambda m, k=k: m[..., k, 0] - m[..., b, 0], involves=[b, k])
                # relative to the baseline (e.g. "style distance at most 5 % above the twin's")
                with np.errstate(divide="ignore", invalid="ignore"):
                    relative = boot.interval(lambda m, k=k: m[..., k, 0] / m[..., b, 0] - 1, involves=[b, k])
            rows.append({"metric": column.key, "better": column.better, "baseline": baseline, "group": group.name,
                         "baseline_mean": float(boot.point[b, 0]) if boot else float("nan"),
                         "group_mean": float(boot.point[k, 0]) if boot else float("nan"),
                         "diff": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
                         "se": interval.se, "df": interval.df, "n": n, "relative": relative.estimate,
                         "relative_ci_low": relative.low, "relative_ci_high": relative.high,
                         "seeds": [len(groups[b].sources), len(group.sources)],
                         "verdict": verdict(interval, column.better),
                         "reliable": n >= MIN_RELIABLE_N and not interval.unknown_seeds,
                         "seed_variation": [boot.sources[b], boot.sources[k]] if boot else ["", ""]})
    return rows


def seed_notes(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Plain sentences on groups whose seed variation is borrowed or unknown."""
    notes = []
    for group, metrics in summary.items():
        variation = next((s["seed_variation"] for s in metrics.values() if s.get("seed_variation")), "")
        if variation == NONE:
            notes.append(f"{group} has one run and no group to borrow seed variation from: its CIs cover the images "
                         "only, and no verdict involving it is given. Train more seeds.")
        elif variation and variation != "own seeds":
            notes.append(f"{group} has one run: its seed variation is {variation} (it assumes seeds move every "
                         "configuration alike).")
    return notes
