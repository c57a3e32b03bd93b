"""The evaluation pipeline, :func:`run_evaluation` (``stylekit evaluate`` is a thin wrapper): open the sources,
read what each model was trained through, choose a depth judge independent of that (:mod:`.judges`), build the
networks, compute every registered metric (or those asked for) per (source, image), summarize with BCa
bootstrap CIs, optionally compare a candidate with a baseline, and write metrics.json/.csv, report.md/.html and
the figures. Given groups of runs (:mod:`.groups`), it summarizes and compares the groups with the hierarchical
bootstrap (:mod:`.hierarchical`) and draws the style-against-structure trade-off with its verdict (:mod:`.frontier`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence


from ..errors import ConfigError
from ..features import NetworkSpec
from ..hardware import pick_device
from ..plugins import get_registry
from .builtin_metrics import BUILTIN_METRICS, NOT_IMPLEMENTED, EvalNetworks
from .frontier import choose_style_axis, tradeoff
from .groups import GroupPlan, compare_groups, seed_notes, summarize_groups
from .judges import DEPTH_JUDGES, DepthJudge, Trained, choose_depth_judge, header_lines, shared_with, \
    trained_through, weights_of
from .runner import EvalResult, EvalSettings, EvaluationError, compare, evaluate, open_source, summarize


def depth_judge(registry, name: str | None, options: dict[str, Any], trained: list[Trained],
                candidates: Sequence[NetworkSpec] = DEPTH_JUDGES) -> DepthJudge:
    """The depth network that judges depth: the one named (``--depth-network``; ``--depth-option weights=FILE``
    alone means a TorchScript file), else the first of ``candidates`` independent of the evaluated models."""
    known = ", ".join(registry.names("depth")) or "(none)"
    if name is None and "weights" in options:
        name = "torchscript"
    if name is None:
        if options:
            raise ConfigError(f"--depth-option {', '.join(options)} needs --depth-network NAME (registered depth "
                              f"networks: {known}); without it the depth judge is chosen automatically")
        return choose_depth_judge(trained, registry, candidates)
    if name not in registry.names("depth"):
        raise ConfigError(f"--depth-network {name!r} is not registered; registered depth networks: {known}")
    if name == "torchscript" and "weights" not in options:
        raise ConfigError("--depth-network torchscript needs --depth-option weights=/path/to/model.pt")
    spec = NetworkSpec.of("depth", name, options)
    return DepthJudge(spec, shared_with(weights_of(spec, registry), trained), chosen=True)


def select_metrics(registry, names: Sequence[str] | None = None) -> tuple[list[type], list[str]]:
    """The registered metric classes to compute (the built-ins in report order, then plugins' by name) and the
    not-yet-implemented ones to report; ``names`` (``--metrics``) picks some, an unknown name is an error."""
    registered = [registry.get("metric", n) for n in registry.names("metric")]
    order = {cls: i for i, cls in enumerate(BUILTIN_METRICS)}
    classes = sorted(registered, key=lambda cls: (order.get(cls, len(order)), cls.name))
    if names is None:
        return classes, list(NOT_IMPLEMENTED)
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in registry.names("metric") and n not in NOT_IMPLEMENTED]
    if unknown:
        raise EvaluationError(f"--metrics: no metric named {', '.join(unknown)}; registered metrics: "
                              f"{', '.join(cls.name for cls in classes)} (plugins add theirs with --plugin)")
    return [cls for cls in classes if cls.name in names], [n for n in names if n in NOT_IMPLEMENTED]


@dataclass
class EvaluationOutput:
    result: EvalResult
    summary: dict
    comparison: dict | None
    files: dict[str, Path]
    #: a grouped evaluation's analysis (:func:`analyze_groups`), as metrics.json's "groups" holds it
    groups: dict | None = None


def analyze_groups(result: EvalResult, plan: GroupPlan, trained: Sequence[Trained],
                   settings: EvalSettings) -> dict[str, Any]:
    """Per group its means with hierarchical CIs, each group's difference from the baseline group and, with two
    or more groups, the trade-off of style against ``plan.y`` with the frontier verdict."""
    groups = plan.groups
    summary = summarize_groups(result, groups, settings.bootstrap, settings.seed)
    baseline = plan.baseline or groups[0].name
    analysis: dict[str, Any] = {
        "groups": [{"name": g.name, "arm": g.arm, "config": g.config, "paths": g.paths, "sources": g.sources}
                   for g in groups],
        "resamples": settings.bootstrap, "seed": settings.seed, "summary": summary, "baseline": baseline,
        "comparison": compare_groups(result, groups, baseline, settings.bootstrap, settings.seed)
        if len(groups) > 1 else [], "notes": seed_notes(summary), "tradeoff": None}
    if len(groups) < 2:
        return analysis
    x, note, independent = choose_style_axis(result, trained, plan.x)
    computed = {c.key for c in result.columns}
    if x is None or plan.y not in computed:
        missing = note if x is None else f"{plan.y} was not computed ({result.unavailable.get(plan.y, '?')})"
        analysis["notes"].append(f"No trade-off: {missing}.")
        return analysis
    trade = tradeoff(result, groups, x, plan.y, plan.frontier_arm, settings.bootstrap, settings.seed)
    trade.update(x_note=note, x_independent=independent)
    analysis["tradeoff"] = trade
    return analysis


def run_evaluation(models: Sequence[str | Path], content: str | Path, out: str | Path, *,
                   reference_dirs: Sequence[str | Path] = (), reference_pattern: str = "{stem}", style: str | Path | None = None,
                   depth_network: str | None = None, depth_options: dict[str, Any] | None = None,
                   depth_judges: Sequence[NetworkSpec] = DEPTH_JUDGES, metrics: Sequence[str] | None = None,
                   backbone: str = "vgg16", backbone_options: dict[str, Any] | None = None,
                   hed_options: dict[str, Any] | None = None, bsds_gt: str | Path | None = None,
                   compare_models: bool | None = None, groups: GroupPlan | None = None, style_size: int = 256,
                   model_style: str | None = None,
                   settings: EvalSettings | None = None, device: str = "cpu",
                   plugins: Sequence[str] = (), progress: Callable[[str, int, int], None] | None = None,
                   warn: Callable[[str], None] | None = None) -> EvaluationOutput:
    from ..data import list_images, read_images
    from . import report

    settings = settings or EvalSettings()
    registry = get_registry(plugins)
    if groups is not None:
        if models or reference_dirs:
            raise EvaluationError("give the runs either as arguments or in groups (--group/--groups-from), not both: "
                                  "every run of a grouped evaluation belongs to a group (one seed of a configuration)")
        models = [path for group in groups.groups for path in group.paths]
    if not models and not reference_dirs:
        raise EvaluationError("nothing to evaluate: give checkpoints or folders of stylized images "
                              "(and/or --reference-dir)")
    content = Path(content).expanduser()
    if not content.exists():
        raise EvaluationError(f"--content: {content} does not exist")
    list_images(content, what="--content")  # a folder without images is found before any network is built
    if bsds_gt is not None and not Path(bsds_gt).is_dir():
        raise EvaluationError(f"--bsds-gt: {bsds_gt} is not a folder of BSDS500 groundTruth .mat files")
    dev = pick_device(device, "--device")
    sources = [open_source(m, device=dev, model_style=model_style) for m in models]
    sources += [open_source(r, name=f"reference:{Path(r).name}", device=dev, pattern=reference_pattern) for r in reference_dirs]
    names = [s.name for s in sources]
    for i, s in enumerate(sources):  # unique names: the tables and figure key on them
        if names.count(s.name) > 1:
            s.name = f"{s.name}#{i + 1}"
    metric_classes, not_implemented = select_metrics(registry, metrics)
    if groups is not None:
        groups.check([c.key for cls in metric_classes for c in cls.columns])
        members = iter(s.name for s in sources)
        for group in groups.groups:
            group.sources = [next(members) for _ in group.paths]
        settings = replace(settings, figure_sources=[group.sources[0] for group in groups.groups])
    trained = [trained_through(s.name, s.recipe, registry) for s in sources]
    judge = None
    if any(cls.name == "depth" for cls in metric_classes):
        judge = depth_judge(registry, depth_network, dict(depth_options or {}), trained, depth_judges)
    loss_backbone = NetworkSpec.of("backbone", backbone, backbone_options or {})
    networks = EvalNetworks(registry, depth=judge.spec if judge else None, backbone=loss_backbone, device=dev,
                            hed=NetworkSpec.of("backbone", "hed_vgg16", hed_options or {}))
    if judge is not None:
        networks.get("depth")  # a depth network that cannot be built is an error, not a missing column
    style_path = Path(style) if style is not None else next((s.style_image for s in sources if s.style_image), None)
    if style_path is not None and not style_path.is_file():
        raise EvaluationError(f"--style: {style_path} does not exist")
    style_original = read_images([style_path], "--style")[0][0] if style_path is not None else None
    style_image = read_images([style_path], "--style", style_size)[0][0] if style_path is not None else None
    result = evaluate(sources, content, networks, style=style_image, style_original=style_original,
                      bsds_gt=Path(bsds_gt) if bsds_gt else None,
                      settings=settings, progress=progress, warn=warn, metric_classes=metric_classes,
                      not_implemented=not_implemented)
    result.header = header_lines(judge, trained, result.metrics, loss_backbone, registry)
    summary = summarize(result, settings)
    analysis = None
    if groups is not None:
        result.skipped += groups.left_out
        analysis = analyze_groups(result, groups, trained, settings)
    comparison = None
    if compare_models or (compare_models is None and len(sources) == 2 and groups is None):
        if len(sources) < 2:
            raise EvaluationError("--compare needs two sources: BASELINE then CANDIDATE")
        base, cand = result.sources[0], result.sources[1]
        comparison = {"baseline": base, "candidate": cand, "rows": compare(result, base, cand, settings)}
    # absolute paths: `stylekit export --evaluation` finds the model in this file from any working folder
    inputs = {"models": [_absolute(m) for m in models], "reference_dirs": [_absolute(r) for r in reference_dirs],
              "content": _absolute(content), "style": _absolute(style_path) if style_path else None,
              "model_style": model_style, "bsds_gt": _absolute(bsds_gt) if bsds_gt else None,
              "max_images": settings.max_images, "size": settings.size, "seed": settings.seed,
              "bootstrap": settings.bootstrap,
              "edge_threshold": settings.edge_threshold, "edge_thin": settings.edge_thin,
              "metrics": [cls.name for cls in metric_classes]}
    files = report.write_all(result, summary, comparison, Path(out), inputs, analysis)
    return EvaluationOutput(result, summary, comparison, files, analysis)


def _absolute(path: str | Path) -> str:
    return str(Path(path).absolute())
