"""``stylekit evaluate``: measure what depth-aware style transfer claims to preserve (depth, edges, saliency).

:func:`run_evaluation` is the whole pipeline (the CLI is a thin wrapper): open the sources, build the
networks, compute every metric per (source, image), summarise with bootstrap CIs, optionally compare a
candidate with a baseline, and write metrics.json/.csv, report.md/.html and the figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..errors import ConfigError
from ..features import NetworkSpec
from .metrics import (BUILTIN_METRICS, Column, EvalNetworks, Metric, MetricUnavailable, all_columns,
                      metrics_markdown)
from .runner import EvalResult, EvalSettings, EvaluationError, Source, compare, evaluate, open_source, summarise

__all__ = ["BUILTIN_METRICS", "Column", "EvalNetworks", "EvalResult", "EvalSettings", "EvaluationError", "Metric",
           "MetricUnavailable", "Source", "all_columns", "compare", "evaluate", "metrics_markdown", "open_source",
           "parse_options", "run_evaluation", "summarise", "DEFAULT_DEPTH_FILE"]

#: The shared NYU depth network, used by default when it is in the weights directory.
DEFAULT_DEPTH_FILE = "nyu_depth_hedvgg.torchscript.pt"


def parse_options(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["k=v", …]`` → dict; values are YAML (numbers, booleans, lists)."""
    from ..config import safe_yaml_load

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = safe_yaml_load(value, f"{flag} {key.strip()}") if value.strip() else ""
    return out


def depth_spec(registry, name: str | None, options: dict[str, Any]) -> NetworkSpec:
    """The depth network to use; without a name, the shared TorchScript file when the weights dir has it."""
    known = ", ".join(registry.names("depth")) or "(none)"
    if name is None:
        wdir = os.environ.get("STYLEKIT_WEIGHTS_DIR")
        if "weights" in options:
            name = "torchscript"
        elif wdir and (Path(wdir).expanduser() / DEFAULT_DEPTH_FILE).is_file():
            name, options = "torchscript", {**options, "weights": str(Path(wdir).expanduser() / DEFAULT_DEPTH_FILE)}
        else:
            raise ConfigError(
                "no usable depth network: pass --depth-network NAME (registered depth networks: "
                f"{known}) with its options, e.g. --depth-network torchscript --depth-option weights=/path/model.pt, "
                f"or put {DEFAULT_DEPTH_FILE} in the weights directory (--weights-dir / STYLEKIT_WEIGHTS_DIR)")
    if name not in registry.names("depth"):
        raise ConfigError(f"--depth-network {name!r} is not registered; registered depth networks: {known}")
    if name == "torchscript" and "weights" not in options:
        raise ConfigError("--depth-network torchscript needs --depth-option weights=/path/to/model.pt")
    return NetworkSpec.of("depth", name, options)


@dataclass
class EvaluationOutput:
    result: EvalResult
    summary: dict
    comparison: dict | None
    files: dict[str, Path]


def run_evaluation(models: Sequence[str | Path], content: str | Path, out: str | Path, *,
                   reference_dirs: Sequence[str | Path] = (), reference_pattern: str = "{stem}", style: str | Path | None = None,
                   depth_network: str | None = None, depth_options: dict[str, Any] | None = None,
                   backbone: str = "vgg16", backbone_options: dict[str, Any] | None = None,
                   hed_options: dict[str, Any] | None = None, bsds_gt: str | Path | None = None,
                   compare_models: bool | None = None, style_size: int = 256,
                   settings: EvalSettings | None = None, device: str = "cpu",
                   plugins: Sequence[str] = (), progress: Callable[[str, int, int], None] | None = None,
                   warn: Callable[[str], None] | None = None) -> EvaluationOutput:
    from ..data import list_images, read_images
    from ..plugins import get_registry
    from ..runtime import pick_device
    from . import report

    settings = settings or EvalSettings()
    registry = get_registry(plugins)
    if not models and not reference_dirs:
        raise EvaluationError("nothing to evaluate: give checkpoints or folders of stylised images "
                              "(and/or --reference-dir)")
    content = Path(content).expanduser()
    if not content.exists():
        raise EvaluationError(f"--content: {content} does not exist")
    list_images(content, what="--content")  # a folder without images is found before any network is built
    if bsds_gt is not None and not Path(bsds_gt).is_dir():
        raise EvaluationError(f"--bsds-gt: {bsds_gt} is not a folder of BSDS500 groundTruth .mat files")
    dev = torch.device("cuda") if device == "auto" and torch.cuda.is_available() else \
        pick_device("cpu" if device == "auto" else device, "--device")
    sources = [open_source(m, device=dev) for m in models]
    sources += [open_source(r, name=f"reference:{Path(r).name}", device=dev, pattern=reference_pattern) for r in reference_dirs]
    names = [s.name for s in sources]
    for i, s in enumerate(sources):  # unique names: the tables and figure key on them
        if names.count(s.name) > 1:
            s.name = f"{s.name}#{i + 1}"
    spec = depth_spec(registry, depth_network, dict(depth_options or {}))
    networks = EvalNetworks(registry, depth=spec, hed=NetworkSpec.of("backbone", "hed_vgg16", hed_options or {}),
                            backbone=NetworkSpec.of("backbone", backbone, backbone_options or {}), device=dev)
    networks.get("depth")  # a depth network that cannot be built is an error, not a missing column
    style_path = Path(style) if style is not None else next((s.style_image for s in sources if s.style_image), None)
    if style_path is not None and not style_path.is_file():
        raise EvaluationError(f"--style: {style_path} does not exist")
    style_image = read_images([style_path], "--style", style_size)[0][0] if style_path is not None else None
    result = evaluate(sources, content, networks, style=style_image, bsds_gt=Path(bsds_gt) if bsds_gt else None,
                      settings=settings, progress=progress, warn=warn)
    summary = summarise(result, settings)
    comparison = None
    if compare_models or (compare_models is None and len(sources) == 2):
        if len(sources) < 2:
            raise EvaluationError("--compare needs two sources: BASELINE then CANDIDATE")
        base, cand = result.sources[0], result.sources[1]
        comparison = {"baseline": base, "candidate": cand, "rows": compare(result, base, cand, settings)}
    inputs = {"models": [str(m) for m in models], "reference_dirs": [str(r) for r in reference_dirs],
              "content": str(content), "style": str(style_path) if style_path else None,
              "bsds_gt": str(bsds_gt) if bsds_gt else None, "max_images": settings.max_images,
              "size": settings.size, "seed": settings.seed, "bootstrap": settings.bootstrap,
              "edge_threshold": settings.edge_threshold, "edge_thin": settings.edge_thin}
    files = report.write_all(result, summary, comparison, Path(out), inputs)
    return EvaluationOutput(result, summary, comparison, files)
