"""`stylekit evaluate`: measure what a style network preserves, and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import (OfflineOption, PluginOption, WeightsDirOption, app, console, err_console, split_list,
                  weights_env)


@app.command()
def evaluate(
    models: Optional[List[Path]] = typer.Argument(None, help="Checkpoints (run dir, checkpoint dir, model.safetensors) "
                                                  "or folders of stylized images. Two: BASELINE CANDIDATE."),
    content: Path = typer.Option(..., "--content", help="Folder of content images."),
    output: Path = typer.Option(Path("evaluation"), "--output", "-o", help="Output folder for metrics and report."),
    reference_dir: Optional[List[Path]] = typer.Option(None, "--reference-dir", help="Folder of images from another "
                                                       "method (same file stems as the content), repeatable."),
    reference_pattern: str = typer.Option("{stem}", "--reference-pattern", help="File name (no suffix) of a "
                                          "reference image for content STEM, e.g. '{stem}_wave'."),
    style: Optional[Path] = typer.Option(None, "--style", help="Style image for the style loss (default: the "
                                         "checkpoint recipe's)."),
    model_style: Optional[str] = typer.Option(None, "--model-style", help="The style a multi-style model is "
                                              "evaluated in (one of its styles; judged against that style's "
                                              "image). Single-style models ignore it."),
    max_images: Optional[int] = typer.Option(None, "--max-images", min=1, help="Evaluate the first N content images."),
    size: Optional[int] = typer.Option(None, "--size", min=16, help="Resize content so the longer side is this."),
    depth_network: Optional[str] = typer.Option(None, "--depth-network", help="Registered depth network that judges "
                                                "depth (default: the first of effnet_depth_lite lite0, lite2, "
                                                "hed_depth_lite on this machine that shares no weights with the "
                                                "models' training networks)."),
    depth_option: Optional[List[str]] = typer.Option(None, "--depth-option", help="Depth network option KEY=VALUE."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Metrics to compute, comma-separated (default: "
                                          "every registered one; `stylekit plugins` lists them)."),
    backbone: str = typer.Option("vgg16", "--backbone", help="Backbone for the content and style losses."),
    backbone_option: Optional[List[str]] = typer.Option(None, "--backbone-option", help="Backbone option KEY=VALUE."),
    hed_option: Optional[List[str]] = typer.Option(None, "--hed-option", help="hed_vgg16 option KEY=VALUE (edges)."),
    bsds_gt: Optional[Path] = typer.Option(None, "--bsds-gt", help="BSDS500 groundTruth folder (*.mat)."),
    edge_threshold: float = typer.Option(0.5, "--edge-threshold", help="HED probability counted as an edge."),
    thin: bool = typer.Option(False, "--thin", help="Thin binarized edges to one pixel before matching."),
    compare: Optional[bool] = typer.Option(None, "--compare/--no-compare", help="Report candidate − baseline with "
                                           "bootstrap CIs (default: on when exactly two sources)."),
    group: Optional[List[str]] = typer.Option(None, "--group", help="ARM=RUN,RUN… or ARM/CONFIG=RUN,RUN…: the "
                                              "runs of one configuration, one per seed (globs work; repeatable). Groups are "
                                              "summarized and compared with a hierarchical bootstrap over seeds "
                                              "and images."),
    groups_from: Optional[List[Path]] = typer.Option(None, "--groups-from", help="An ablation folder (`stylekit "
                                                     "ablate -o`): its finished runs grouped by arm and configuration "
                                                     "minus the seed (repeatable)."),
    baseline_group: Optional[str] = typer.Option(None, "--baseline-group", help="The group the others are compared "
                                                 "with (default: the first)."),
    trade_off_x: Optional[str] = typer.Option(None, "--trade-off-x", help="Style distance column of the trade-off "
                                              "(default: the first of texture_lite2, texture_gabor, texture_lite0 "
                                              "that shares no weights with the models' training)."),
    trade_off_y: str = typer.Option("depth_ordinal", "--trade-off-y", help="Structure column of the trade-off."),
    frontier_arm: Optional[str] = typer.Option(None, "--frontier-arm", help="The arm whose line is the frontier "
                                               "the other arms are judged against (default: the first arm)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed for pixel pairs and the bootstrap."),
    figure_rows: int = typer.Option(6, "--figure-rows", min=1, help="Content images shown in the figure."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, auto…"),
    plugin: Optional[List[str]] = PluginOption,
    weights_dir: Optional[Path] = WeightsDirOption,
    offline: bool = OfflineOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar (for logs)."),
) -> None:
    """Measure depth, edge and saliency preservation (and SSIM, content/style loss) and write a report.

    With --group/--groups-from: means over seeds and images per configuration, differences between groups, and
    depth against style distance with the verdict on whether an arm lies above the first arm's frontier.
    """
    from ..evaluate.console import print_results, progress_bar
    from ..evaluate.groups import GroupPlan, groups_from_grid, merge_groups, parse_group
    from ..evaluate.pipeline import run_evaluation
    from ..evaluate.runner import EvalSettings
    from ..yamlio import options_from_texts

    weights_env(weights_dir, offline)
    plan = None
    if group or groups_from:
        found, left_out = [parse_group(text) for text in group or []], []
        for folder in groups_from or []:
            grid_groups, grid_left_out = groups_from_grid(folder)
            found += grid_groups
            left_out += grid_left_out
        for text in left_out:
            err_console.print(f"[yellow]warning:[/] {text}", highlight=False)
        plan = GroupPlan(merge_groups(found), baseline_group, trade_off_x, trade_off_y, frontier_arm, left_out)
    settings = EvalSettings(max_images=max_images, size=size, edge_threshold=edge_threshold, edge_thin=thin,
                            seed=seed, bootstrap=bootstrap, figure_rows=figure_rows)
    warn = lambda message: err_console.print(f"[yellow]warning:[/] {message}", highlight=False)  # noqa: E731
    with progress_bar(err_console, enabled=not no_progress) as progress:
        output_ = run_evaluation(models or [], content, output, reference_dirs=reference_dir or [],
                                 reference_pattern=reference_pattern, style=style,
                                 depth_network=depth_network,
                                 depth_options=options_from_texts(depth_option, "--depth-option"),
                                 metrics=split_list([metrics]) if metrics else None,
                                 backbone=backbone, backbone_options=options_from_texts(backbone_option, "--backbone-option"),
                                 hed_options=options_from_texts(hed_option, "--hed-option"), bsds_gt=bsds_gt,
                                 compare_models=compare, groups=plan, settings=settings, device=device,
                                 model_style=model_style,
                                 plugins=plugin or [],
                                 progress=progress, warn=warn)
    print_results(console, output_)


