"""One Metric: built-in and plugin metrics share a base class, both are listed and both are computed by
`stylekit evaluate` (selectable with --metrics); the statistics and the figure labels of the report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import stylekit
from stylekit.cli import app
from stylekit.evaluate import EvalSettings, EvaluationError, run_evaluation, select_metrics
from stylekit.evaluate import functional as Fm
from stylekit.evaluate.report import distinct_labels
from stylekit.evaluate.runner import MIN_RELIABLE_N, EvalResult, compare
from stylekit.metrics import Column
from stylekit.plugins import get_registry

INTRINSIC = Path(__file__).resolve().parents[1] / "plugins" / "stylekit-intrinsic"


class MeanShift(stylekit.Metric):
    """Distance between mean colors."""

    name = "mean_shift"

    def forward(self, content, stylized):
        return (content.mean((2, 3)) - stylized.mean((2, 3))).norm(dim=1)


def test_one_base_class():
    from stylekit.evaluate.builtin_metrics import SSIM

    assert issubclass(SSIM, stylekit.Metric)


def test_a_forward_only_metric_reports_one_column_named_after_it():
    assert MeanShift.columns == (Column("mean_shift", "mean_shift", "Distance between mean colors.", "", "", "lower"),)
    images = torch.zeros(2, 3, 8, 8), torch.full((2, 3, 8, 8), 3.0)
    assert torch.equal(MeanShift().compute(*images)["mean_shift"], MeanShift()(*images))

    class Empty(stylekit.Metric):
        name = "empty"

    with pytest.raises(NotImplementedError, match="neither forward"):
        Empty()(*images)


def test_builtin_metrics_are_registered_and_listed():
    registry = get_registry()
    assert {"depth", "edges", "bsds", "saliency", "ssim", "content", "style", "lpips"} <= set(registry.names("metric"))
    assert registry.entry("metric", "ssim").source == "built-in"
    classes, not_implemented = select_metrics(registry)
    assert [c.name for c in classes[:3]] == ["depth", "edges", "bsds"] and not_implemented == ["artfid"]
    out = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "250"}).output
    listed = {tuple(cell.strip() for cell in line.split("│")[1:4]) for line in out.splitlines() if "│" in line}
    assert {("metric", name, "built-in") for name in ("depth", "ssim", "style")} <= listed
    with pytest.raises(EvaluationError, match=r"no metric named nope; registered metrics: depth, edges"):
        select_metrics(registry, ["ssim", "nope"])


def _checkpoint(path: Path) -> Path:
    from stylekit.checkpoint import save_model
    from stylekit.models.transformer import TransformerNet

    torch.manual_seed(0)
    path.parent.mkdir(parents=True)
    save_model(TransformerNet({"channels": 8, "residual_blocks": 1}), path)
    return path


def test_a_plugin_metric_is_computed_by_evaluate(tmp_path, monkeypatch):
    """The stylekit-intrinsic package's `shading_error`, as its README and docs/writing-a-plugin.md §5 promise."""
    from stylekit.testing import make_images

    monkeypatch.syspath_prepend(str(INTRINSIC))
    make_images(tmp_path / "content", count=2, size=(32, 24))
    model = _checkpoint(tmp_path / "m" / "model.safetensors")
    out = run_evaluation([model], tmp_path / "content", tmp_path / "eval", plugins=["stylekit_intrinsic.plugin"],
                         metrics=["shading_error", "ssim"], settings=EvalSettings(bootstrap=100))
    data = json.loads(out.files["json"].read_text())
    assert data["inputs"]["metrics"] == ["ssim", "shading_error"]  # built-ins first, then plugins
    assert data["summary"]["m"]["shading_error"]["n"] == 2 and data["summary"]["m"]["shading_error"]["mean"] > 0
    assert "depth_rmse" not in data["summary"]["m"] and "lpips" not in data["unavailable"]
    assert "`shading_error` (shading_error)" in out.files["markdown"].read_text()  # in the glossary too

    result = CliRunner().invoke(app, ["evaluate", str(model), "--content", str(tmp_path / "content"), "-o",
                                      str(tmp_path / "cli"), "--plugin", "stylekit_intrinsic.plugin", "--metrics",
                                      "shading_error", "--no-progress"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "shading_error" in result.output


def test_a_broken_plugin_metric_is_reported_not_fatal(tmp_path):
    from stylekit.testing import make_images

    plugin = tmp_path / "broken_metric.py"
    plugin.write_text("import stylekit\n\n\nclass Broken(stylekit.Metric):\n    \"\"\"Always fails.\"\"\"\n\n"
                      "    name = 'broken'\n\n    def forward(self, content, stylized):\n"
                      "        raise RuntimeError('no luck')\n\n\n@stylekit.hookimpl\ndef stylekit_metrics():\n"
                      "    return [Broken]\n")
    make_images(tmp_path / "content", count=1, size=(24, 24))
    model = _checkpoint(tmp_path / "m" / "model.safetensors")
    out = run_evaluation([model], tmp_path / "content", tmp_path / "eval", plugins=[str(plugin)],
                         metrics=["broken", "ssim"], settings=EvalSettings(bootstrap=100))
    assert out.result.unavailable["broken"] == "failed: RuntimeError: no luck"
    assert out.summary["m"]["ssim"]["n"] == 1


# -- statistics -------------------------------------------------------------------------------------------------
def test_bca_intervals_are_scipys():
    from scipy import stats

    x = np.random.default_rng(3).gamma(2.0, size=15)  # skewed: BCa and percentile differ
    ours = Fm.bootstrap_mean_ci(x, 500, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.bootstrap((x,), np.mean, n_resamples=500, method="BCa", rng=np.random.default_rng(1))
    assert ours == pytest.approx(tuple(ref.confidence_interval))
    y = x + np.random.default_rng(4).normal(0.3, 0.1, size=15)
    lo, hi = Fm.paired_bootstrap_ci(x, y, 500, seed=1)
    assert 0 < lo < float(np.mean(y - x)) < hi  # paired: the shared per-image variation cancels
    assert Fm.paired_bootstrap_ci(x, x + 0.5) == pytest.approx((0.5, 0.5))  # no spread: the difference itself


def _result(n: int) -> EvalResult:
    column = Column("m", "m", "", "", "", "higher")
    rng = np.random.default_rng(0)
    rows = [{"source": s, "image": str(i), "m": float(rng.normal() + (1 if s == "b" else 0))}
            for i in range(n) for s in ("a", "b")]
    return EvalResult(["a", "b"], [str(i) for i in range(n)], [column], rows, {}, [], {})


def test_verdicts_below_twenty_images_are_marked_unreliable():
    from stylekit.evaluate.report import comparison_rows, small_sample_warning

    few = compare(_result(4), "a", "b", EvalSettings(bootstrap=200))
    assert few[0]["verdict"] == "better" and few[0]["reliable"] is False
    assert comparison_rows(few)[0][-1] == f"better (unreliable: n < {MIN_RELIABLE_N})"
    assert small_sample_warning(few).startswith("Unreliable verdicts: only 4 image(s)")
    enough = compare(_result(MIN_RELIABLE_N), "a", "b", EvalSettings(bootstrap=200))
    assert enough[0]["reliable"] is True and small_sample_warning(enough) == ""


def test_figure_labels_keep_what_differs():
    assert distinct_labels(["runs/quickstart-style.weight=1e3-tv.weight=1e-5",
                            "runs/quickstart-style.weight=3e3-tv.weight=1e-5"], 16) == ["weight=1e3", "weight=3e3"]
    assert distinct_labels(["quickstart", "quickstart-style.weight=3"], 16) == ["quickstart", "style.weight=3"]
    assert distinct_labels(["same", "same"], 16) == ["1: same", "2: same"]
