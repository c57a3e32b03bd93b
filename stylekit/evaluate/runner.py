"""Runs the metrics over content images × sources (checkpoints, folders of stylized images).

A *source* yields a stylized image for a content image: a checkpoint stylizes it, a folder supplies the
file with the same stem. Everything is evaluated at the content image's size (a folder's image of another
size is resized to it). Unreadable images are reported and skipped, never fatal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..data import describe_unreadable, list_images, load_image
from ..errors import StylekitError
from ..functional import align_scale_shift, normalize_min_max
from ..metrics import Column, Metric, MetricContext, MetricUnavailable
from ..stylize import stylize_tensor
from . import functional as Fm
from .builtin_metrics import BUILTIN_METRICS, NOT_IMPLEMENTED, EvalNetworks, load_bsds_boundaries, not_implemented_reason

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: below this many images the comparison's verdicts are reported as unreliable
MIN_RELIABLE_N = 20


class EvaluationError(StylekitError):
    """Evaluation inputs that cannot be used (no content images, an unknown source…)."""


@dataclass
class Source:
    """A model or a folder of already-stylized images."""

    name: str
    kind: str  # "checkpoint" or "folder"
    path: Path
    model: Any = None
    files: dict[str, Path] = field(default_factory=dict)
    style_image: Path | None = None
    #: a folder's file name for a content stem, e.g. "{stem}_wave" for Johnson's chicago_wave.jpg
    pattern: str = "{stem}"
    #: the recipe the checkpoint was trained with (None: a folder, or no recipe recorded)
    recipe: dict | None = None

    def stylize(self, stem: str, content: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.kind == "checkpoint":  # as `stylekit stylize` does it (its mirrored margin included), in fp32
            return stylize_tensor(self.model, content.to(device), tile=0).clamp(0, 255)
        wanted = self.pattern.format(stem=stem)
        if wanted not in self.files:
            raise FileNotFoundError(f"no image named {wanted}.* in {self.path}")
        image = load_image(self.files[wanted])
        if image.shape[-2:] != content.shape[-2:]:
            image = F.interpolate(image, size=content.shape[-2:], mode="bilinear", align_corners=False,
                                  antialias=True).clamp(0, 255)
        return image


def _recipe(model_file: Path) -> dict | None:
    """The recipe recorded with a checkpoint: its meta.json, else its run's config.yaml."""
    from ..checkpoint import META_FILE
    from ..runs.folder import RunDir

    try:
        return json.loads((model_file.parent / META_FILE).read_text())["recipe"]
    except Exception:  # noqa: BLE001 - no meta.json, or another version's: try the run's config
        pass
    run = RunDir.containing(model_file)
    return (run.read_config() or None) if run is not None else None


def _recipe_style(recipe: dict | None, index: int | None = None) -> Path | None:
    """The recipe's style image (its ``index``-th for a multi-style model; else the first), if it still exists."""
    try:
        images = list(recipe["style"]["images"] or [])  # type: ignore[index]
    except Exception:  # noqa: BLE001
        return None
    if index is not None:
        images = images[index:index + 1]
    return next((Path(image) for image in images if Path(image).is_file()), None)


def open_source(path: str | Path, name: str | None = None, device: torch.device | str = "cpu",
                pattern: str = "{stem}", model_style: str | None = None) -> Source:
    """A checkpoint (run dir / checkpoint dir / model.safetensors / a shipped model's name) or a folder of stylized
    images. A multi-style model is evaluated in one of its styles, ``model_style`` (judged against that style's
    image); single-style models ignore it."""
    from ..checkpoint import load_model
    from ..models.zoo import list_models
    from ..runs.folder import RunDir
    from ..session import resolve_model
    from ..stylize import stylization

    text = str(path)
    path = Path(text).expanduser()
    try:
        model_file = resolve_model(text)
    except StylekitError:
        if not path.exists():
            raise EvaluationError(f"{text} does not exist: give a run folder, a checkpoint, a folder of images or a "
                                  f"shipped model's name ({', '.join(list_models()) or 'none ship here'})") from None
        model_file = None
    if model_file is not None and model_file.suffix == ".safetensors":
        model = load_model(model_file).to(device).eval()
        label = name or (text if not path.exists() else path.name if path.is_dir() else path.parent.name)
        run = RunDir.containing(model_file)
        if name is None and run is not None and not path.samefile(run.path):  # a checkpoint: say whose
            label = f"{run.name}/{model_file.parent.name}"
        recipe = _recipe(model_file)
        index = None
        styles = list(getattr(model, "styles", None) or [])
        if styles:
            if model_style not in styles:
                raise EvaluationError(f"{text} is a multi-style model ({', '.join(styles)}): give --model-style NAME, "
                                      "one of them, to evaluate it in that style")
            index = styles.index(model_style)
            model, label = stylization(model, model_style), f"{label}:{model_style}"
        return Source(label, "checkpoint", path, model=model, style_image=_recipe_style(recipe, index), recipe=recipe)
    if path.is_dir():
        files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not files:
            raise EvaluationError(f"{path}: neither a checkpoint nor a folder of images")
        if "{stem}" not in pattern:
            raise EvaluationError(f"--reference-pattern {pattern!r} must contain {{stem}}")
        return Source(name or path.name, "folder", path, files=files, pattern=pattern)
    raise EvaluationError(f"{path}: not a stylekit checkpoint and not a folder of images")


@dataclass
class EvalSettings:
    max_images: int | None = None
    size: int | None = None  # longer side of content images (None: as stored)
    edge_threshold: float = 0.5
    edge_thin: bool = False
    seed: int = 0
    bootstrap: int = 1000
    figure_rows: int = 6
    #: the sources the comparison figure shows (None: all; a grouped evaluation shows one run per group)
    figure_sources: list[str] | None = None


@dataclass
class EvalResult:
    sources: list[str]
    images: list[str]
    columns: list[Column]
    per_image: list[dict[str, Any]]  # {"source", "image", key: value}
    unavailable: dict[str, str]  # metric name → reason
    skipped: list[str]
    networks: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    figure_data: list[dict[str, Any]] = field(default_factory=list)
    #: the metrics that ran
    metrics: list[Metric] = field(default_factory=list)
    #: the report's statement on the judges' independence: (a warning?, sentence)
    header: list[tuple[bool, str]] = field(default_factory=list)

    def values(self, source: str, key: str) -> np.ndarray:
        """Per-image values of one metric for one source, in image order (NaN where missing)."""
        by_image = {r["image"]: r.get(key, float("nan")) for r in self.per_image if r["source"] == source}
        return np.array([by_image.get(img, float("nan")) for img in self.images], dtype=float)


def _gather_content(content: Path, max_images: int | None) -> list[Path]:
    try:
        files = list_images(content, what="--content")
    except StylekitError as exc:
        raise EvaluationError(str(exc)) from None
    return files[:max_images] if max_images else files


def build_metrics(context: MetricContext, settings: EvalSettings, metric_classes=BUILTIN_METRICS,
                  not_implemented: Iterable[str] = tuple(NOT_IMPLEMENTED)) -> tuple[list[Metric], dict[str, str]]:
    """Instantiate and prepare each metric; one that cannot run here (or a plugin's that fails) is recorded with
    the reason."""
    edge_opts = {"threshold": settings.edge_threshold, "thin": settings.edge_thin}
    options = {"edges": edge_opts, "bsds": edge_opts, "depth": {"seed": settings.seed}}
    metrics, unavailable = [], {}
    for cls in metric_classes:
        try:
            metric = cls(options.get(cls.name) if cls in BUILTIN_METRICS else None)
            metric.prepare(context)
            metrics.append(metric)
        except MetricUnavailable as exc:
            unavailable[cls.name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin metric must not end the evaluation
            if cls in BUILTIN_METRICS:
                raise
            unavailable[cls.name] = f"failed: {type(exc).__name__}: {exc}"
    for name in not_implemented:
        unavailable[name] = not_implemented_reason(name)
    return metrics, unavailable


@torch.no_grad()
def evaluate(sources: list[Source], content_dir: Path, networks: EvalNetworks, *, style: torch.Tensor | None = None,
             style_original: torch.Tensor | None = None,
             bsds_gt: Path | None = None, settings: EvalSettings | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             warn: Callable[[str], None] | None = None, metric_classes=BUILTIN_METRICS,
             not_implemented: Iterable[str] = tuple(NOT_IMPLEMENTED)) -> EvalResult:
    """Every metric for every (source, content image); the first ``figure_rows`` images are kept for the figure."""
    settings = settings or EvalSettings()
    warn = warn or (lambda message: None)
    files = _gather_content(Path(content_dir), settings.max_images)
    context = MetricContext(networks=networks, style=style, style_original=style_original, device=networks.device)
    metrics, unavailable = build_metrics(context, settings, metric_classes, not_implemented)
    if bsds_gt is None:
        unavailable.setdefault("bsds", "no ground truth: pass --bsds-gt DIR (BSDS500 groundTruth/*.mat)")
        metrics = [m for m in metrics if m.name != "bsds"]
    runnable: list[Metric] = []
    # A metric whose network is missing fails on first use: probe each once on a tiny image.
    probe = torch.full((1, 3, 32, 32), 128.0)
    for metric in metrics:
        try:
            metric.compute(probe, probe)
            runnable.append(metric)
        except MetricUnavailable as exc:
            unavailable[metric.name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken plugin metric must not end the evaluation
            if type(metric) in BUILTIN_METRICS:
                raise
            unavailable[metric.name] = f"failed: {type(exc).__name__}: {exc}"
    networks.clear()
    columns = [c for m in runnable for c in m.columns]
    if any(m.name == "bsds" for m in runnable):
        columns.append(Column("bsds_f_content", "BSDS F of the content", "F of E(x) against the human boundaries "
                              "(the ceiling for bsds_f)", "HED (hed_vgg16)", "[0, 1]", "higher"))
    per_image: list[dict[str, Any]] = []
    skipped: list[str] = []
    images: list[str] = []
    figure: list[dict[str, Any]] = []
    total = len(files) * max(1, len(sources))
    done = 0
    for path in files:
        stem = path.stem
        try:
            content = load_image(path, settings.size) if settings.size else load_image(path)
        except Exception as exc:
            skipped.append(describe_unreadable(path, exc))
            warn(f"skipped content image {describe_unreadable(path, exc)}")
            done += len(sources)
            if progress:
                progress(stem, done, total)
            continue
        context: dict[str, Any] = {}
        if bsds_gt is not None:
            gt_file = Path(bsds_gt) / f"{stem}.mat"
            if gt_file.is_file():
                try:
                    boundaries = load_bsds_boundaries(gt_file)
                    if boundaries.shape != content.shape[-2:]:
                        boundaries = resize_boundaries(boundaries, tuple(content.shape[-2:]))
                    context["boundaries"] = boundaries[None]
                except Exception as exc:
                    warn(f"ground truth {gt_file} unreadable: {type(exc).__name__}: {exc}")
            else:
                warn(f"no BSDS ground truth for {stem} in {bsds_gt}")
        images.append(stem)
        keep_for_figure = len(figure) < settings.figure_rows
        fig_row: dict[str, Any] = {"image": stem, "content": content, "outputs": {}}
        if "boundaries" in context:
            fig_row["gt"] = context["boundaries"][0].float()
        for source in sources:
            try:
                stylized = source.stylize(stem, content, networks.device)
            except Exception as exc:
                skipped.append(f"{source.name}/{stem}: {type(exc).__name__}: {exc}")
                warn(f"skipped {source.name} on {stem}: {type(exc).__name__}: {exc}")
                done += 1
                if progress:
                    progress(stem, done, total)
                continue
            row: dict[str, Any] = {"source": source.name, "image": stem}
            for metric in runnable:
                for key, value in metric.compute(content, stylized, **context).items():
                    row[key] = float(value[0])
            if "boundaries" in context and any(m.name == "bsds" for m in runnable):
                bsds = next(m for m in runnable if m.name == "bsds")
                row["bsds_f_content"] = float(bsds.compute(content, content, **context)["bsds_f"][0])
            per_image.append(row)
            if keep_for_figure and (settings.figure_sources is None or source.name in settings.figure_sources):
                fig_row["outputs"][source.name] = stylized
            done += 1
            if progress:
                progress(stem, done, total)
        if keep_for_figure:
            _figure_maps(fig_row, networks, settings)
            figure.append(fig_row)
        networks.clear()
    if not images:
        raise EvaluationError(f"none of the {len(files)} content images under {content_dir} could be read")
    return EvalResult(sources=[s.name for s in sources], images=images, columns=columns, per_image=per_image,
                      unavailable=unavailable, skipped=skipped,
                      networks={k: networks.describe(k) for k in networks.specs}, figure_data=figure,
                      metrics=runnable)


def resize_boundaries(boundaries: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a boolean boundary map; shrinking uses max-pooling so one-pixel boundaries are not dropped."""
    b = boundaries[None, None].float()
    if size[0] <= b.shape[-2] and size[1] <= b.shape[-1]:
        return F.adaptive_max_pool2d(b, size)[0, 0] > 0.5
    return F.interpolate(b, size=size, mode="nearest")[0, 0] > 0.5


def _figure_maps(row: dict[str, Any], networks: EvalNetworks, settings: EvalSettings) -> None:
    """Depth (content-normalized, stylized aligned to it) and edge maps for the comparison figure."""
    content = row["content"]
    row["depth"], row["edges"] = {}, {}
    try:
        dc = networks.depth(content)
        target = normalize_min_max(dc.double(), Fm.EPS)
        row["depth"]["content"] = target[0, 0].float()
        for name, out in row["outputs"].items():
            row["depth"][name] = align_scale_shift(networks.depth(out).double(), target)[0, 0].float()
    except MetricUnavailable:
        pass
    try:
        row["edges"]["content"] = networks.edges(content)[0, 0]
        for name, out in row["outputs"].items():
            row["edges"][name] = networks.edges(out)[0, 0]
    except MetricUnavailable:
        pass


# -- summaries and comparisons ---------------------------------------------------------------------------------------
def summarize(result: EvalResult, settings: EvalSettings) -> dict[str, dict[str, dict[str, float]]]:
    """Per source and metric: mean, std, n and a BCa bootstrap 95% CI of the mean over images."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for source in result.sources:
        summary[source] = {}
        for column in result.columns:
            values = result.values(source, column.key)
            finite = values[np.isfinite(values)]
            lo, hi = Fm.bootstrap_mean_ci(finite, settings.bootstrap, seed=settings.seed)
            summary[source][column.key] = {
                "mean": float(finite.mean()) if finite.size else float("nan"),
                "std": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
                "n": int(finite.size), "ci_low": lo, "ci_high": hi}
    return summary


def compare(result: EvalResult, baseline: str, candidate: str, settings: EvalSettings) -> list[dict[str, Any]]:
    """Paired per-image differences (candidate − baseline) per metric with a paired BCa bootstrap 95% CI.

    ``verdict`` reads the CI against the metric's direction: 'better'/'worse' when the CI excludes 0,
    'no clear difference' otherwise; ``reliable`` is False below :data:`MIN_RELIABLE_N` images, where a
    bootstrap CI is too narrow too often to trust the verdict.
    """
    rows = []
    for column in result.columns:
        if column.key == "bsds_f_content":  # a property of the content image, the same for every source
            continue
        a, b = result.values(baseline, column.key), result.values(candidate, column.key)
        ok = np.isfinite(a) & np.isfinite(b)
        diff = b[ok] - a[ok]
        lo, hi = Fm.paired_bootstrap_ci(a[ok], b[ok], settings.bootstrap, seed=settings.seed)
        mean = float(diff.mean()) if diff.size else float("nan")
        sign = 1 if column.better == "higher" else -1
        if not diff.size or math.isnan(lo) or diff.size < 2:
            verdict = "n/a"
        elif lo > 0 or hi < 0:
            verdict = "better" if sign * mean > 0 else "worse"
        else:
            verdict = "no clear difference"
        rows.append({"metric": column.key, "better": column.better, "baseline": float(a[ok].mean()) if ok.any()
                     else float("nan"), "candidate": float(b[ok].mean()) if ok.any() else float("nan"),
                     "diff": mean, "ci_low": lo, "ci_high": hi, "n": int(diff.size), "verdict": verdict,
                     "reliable": int(diff.size) >= MIN_RELIABLE_N})
    return rows
