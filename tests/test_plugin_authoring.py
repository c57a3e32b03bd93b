"""The plugin-author API: contract checks, the metric kind, term context, and `stylekit plugins new`."""

import os
import subprocess
import sys
import textwrap
import tomllib

import pytest
import torch
import yaml
from typer.testing import CliRunner

import stylekit
from stylekit.cli import app
from stylekit.config import load_recipe, validate_recipe
from stylekit.losses import ContentLoss, StyleLoss, TotalVariation
from stylekit.plugins import KIND_HOOKS, PluginManager
from stylekit.scaffold import ScaffoldError, scaffold
from stylekit.testing import (TinyDepth, TinyVGG, check_backbone, check_depth_network, check_metric, check_term,
                              tiny_recipe, tiny_registry)
from stylekit.trainer import Trainer


def test_builtin_terms_pass_the_contract_checks():
    check_term(ContentLoss, zero_for_identical=True)
    check_term(StyleLoss, {"layers": ["relu1_2", "relu3_3"]})
    check_term(TotalVariation)
    from stylekit.losses import DepthLoss, EdgeLoss

    check_term(DepthLoss, {"network": "tiny_depth"}, zero_for_identical=True)
    check_term(DepthLoss, {"network": "tiny_depth", "scale_invariant": True}, zero_for_identical=True, atol=1e-4)
    check_term(EdgeLoss, {"network_options": {"weights": "random"}}, zero_for_identical=True)


def test_tiny_networks_pass_their_contract_checks():
    check_backbone(TinyVGG)
    check_depth_network(TinyDepth)
    assert {"tiny_vgg"} <= set(tiny_registry().names("backbone"))
    assert "tiny_depth" in tiny_registry().names("depth")


class BatchMean(stylekit.LossTerm):
    """Breaks the contract: a batch statistic instead of one value per image."""

    name = "batch_mean"

    def forward(self, batch):
        return (batch.output.mean() - batch.content.mean()).pow(2).expand(batch.output.shape[0])


class Detached(stylekit.LossTerm):
    """Breaks the contract: no gradient reaches ŷ."""

    name = "detached"

    def forward(self, batch):
        return batch.output.detach().mean((1, 2, 3))


class LooseOptions(stylekit.TermOptions):
    model_config = {"extra": "allow"}


class Loose(stylekit.LossTerm):
    """Breaks the contract: its options accept anything."""

    name = "loose"
    Options = LooseOptions

    def forward(self, batch):
        return batch.output.mean((1, 2, 3))


@pytest.mark.parametrize("cls, message", [
    (BatchMean, "depend on the rest of the batch"),
    (Detached, "no finite, non-zero gradient reaches the output"),
    (Loose, "accepts an unknown key"),
])
def test_check_term_names_the_broken_contract(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_term(cls)


def test_check_term_zero_for_identical_flag():
    with pytest.raises(AssertionError, match="expected 0 when the output equals the content"):
        check_term(TotalVariation, zero_for_identical=True)


METRIC_PLUGIN = textwrap.dedent('''
    import stylekit

    class MeanAbs(stylekit.Metric):
        """Mean absolute pixel difference."""
        name = "mean_abs"

        def forward(self, content, stylized):
            return (content - stylized).abs().flatten(1).mean(1)

    @stylekit.hookimpl
    def stylekit_metrics():
        return [MeanAbs]
''')


def test_metrics_are_a_plugin_kind(tmp_path):
    assert KIND_HOOKS["metric"] == "stylekit_metrics"
    path = tmp_path / "my_metric.py"
    path.write_text(METRIC_PLUGIN)
    registry = PluginManager([path], entry_points=False).registry
    cls = registry.get("metric", "mean_abs")
    check_metric(cls, zero_for_identical=True)
    assert stylekit.create_metric("mean_abs", plugins=[path])(torch.zeros(1, 3, 4, 4),
                                                               torch.ones(1, 3, 4, 4)).tolist() == [1.0]
    result = CliRunner().invoke(app, ["plugins", "--plugin", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "mean_abs" in result.output


DERIVED_PLUGIN = textwrap.dedent('''
    import torch
    import stylekit

    class GrayStyle(stylekit.LossTerm):
        """Gram loss on the grayscale of ŷ: features of a derived image, through the run's Perception."""
        name = "gray_style"

        def prepare(self, context):
            super().prepare(context)
            with torch.no_grad():
                gray = context.style_images[0].mean(1, keepdim=True).expand(-1, 3, -1, -1)
                f = self.perception.extract(gray, [stylekit.Tap("relu1_2")])["relu1_2"]
            self.target = stylekit.functional.gram_matrix(f)

        def forward(self, batch):
            gray = batch.output.mean(1, keepdim=True).expand(-1, 3, -1, -1)
            f = self.perception.extract(gray, [stylekit.Tap("relu1_2")])["relu1_2"]
            return (stylekit.functional.gram_matrix(f) - self.target).pow(2).sum((1, 2))

    @stylekit.hookimpl
    def stylekit_loss_terms():
        return [GrayStyle]
''')


def test_terms_reach_the_runs_perception_through_prepare(tmp_path):
    path = tmp_path / "gray.py"
    path.write_text(DERIVED_PLUGIN)
    registry = PluginManager([path], entry_points=False).registry
    check_term(registry.get("loss", "gray_style"))
    registry = PluginManager([path, "stylekit.testing"], entry_points=False).registry
    raw = tiny_recipe(tmp_path, plugins=[str(path), "stylekit.testing"], backbone={"name": "tiny_vgg"},
                      losses={"gray_style": {"weight": 1.0}},
                      schedule={"iterations": 2}, log={"sample_every": 2, "checkpoint_every": 2})
    trainer = Trainer(validate_recipe(raw, registry), tmp_path / "run", registry=registry, show_progress=False)
    result = trainer.fit()
    assert "gray_style" in result.final
    term = next(t for t in trainer.composer.terms if t.key == "gray_style")
    assert term.perception is trainer.perception
    assert not any("perception" in name for name, _ in term.named_modules())  # not a submodule of the term


def test_unprepared_term_says_so():
    term = ContentLoss()
    with pytest.raises(RuntimeError, match="was not prepared"):
        term.perception


def test_scaffolded_packages_pass_their_own_tests(tmp_path):
    kinds = ("loss", "backbone", "depth")
    for kind in kinds:
        result = CliRunner().invoke(app, ["plugins", "new", f"my-{kind}", "--kind", kind, "-o", str(tmp_path)])
        assert result.exit_code == 0, result.output
        target = tmp_path / f"stylekit-my-{kind}"
        package = f"stylekit_my_{kind}"
        for rel in ("pyproject.toml", "README.md", f"{package}/__init__.py", f"{package}/plugin.py",
                    "tests/test_plugin.py", f"recipes/my_{kind}.yaml"):
            assert (target / rel).is_file(), rel
        pyproject = tomllib.loads((target / "pyproject.toml").read_text())
        assert pyproject["project"]["entry-points"]["stylekit"] == {f"my_{kind}": f"{package}.plugin"}
        assert pyproject["project"]["name"] == f"stylekit-my-{kind}"
        # the recipe resolves, with the plugin given as a file, through the package's own copy of the quickstart
        recipe = load_recipe(target / "recipes" / f"my_{kind}.yaml", extra_plugins=[str(target / package / "plugin.py")])
        assert recipe.name == f"my_{kind}"
        assert (target / "recipes" / "quickstart.yaml").is_file() and (target / "recipes/styles/wave.jpg").is_file()
        assert "extends: quickstart.yaml\n" in (target / "recipes" / f"my_{kind}.yaml").read_text()
        assert f"`stylekit plugins new my-{kind} --kind {kind}`" in (target / "README.md").read_text()
    # the generated tests, all three packages in one pytest session (as each would run on its own)
    dirs = [str(tmp_path / f"stylekit-my-{kind}") for kind in kinds]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dirs), "STYLEKIT_DISABLE_ENTRY_POINTS": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                          *(f"{d}/tests" for d in dirs)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "9 passed" in run.stdout, run.stdout


def test_module_plugins_in_a_recipe_are_not_taken_for_paths(tmp_path):
    raw = tiny_recipe(tmp_path, plugins=["stylekit.testing"], backbone={"name": "tiny_vgg"})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.plugins == ["stylekit.testing"] and recipe.backbone.name == "tiny_vgg"


def test_scaffold_errors(tmp_path):
    with pytest.raises(ScaffoldError, match="lowercase letters"):
        scaffold("My Loss", "loss", tmp_path)
    with pytest.raises(ScaffoldError, match="built-in"):
        scaffold("style", "loss", tmp_path)
    with pytest.raises(ScaffoldError, match="choose one of loss, backbone, depth"):
        scaffold("x", "sampler", tmp_path)
    scaffold("edgy", "loss", tmp_path)
    with pytest.raises(ScaffoldError, match="exists and is not empty"):
        scaffold("edgy", "loss", tmp_path)
    scaffold("edgy", "loss", tmp_path, force=True)


def test_config_output_is_valid_yaml_in_a_narrow_terminal(tmp_path):
    """`stylekit config` output must not be wrapped by the console: a wrapped long path changes its value."""
    deep = tmp_path / ("a_rather_long_folder_name_" * 4) / "content"
    raw = tiny_recipe(tmp_path)
    raw["data"]["root"] = str(deep)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["config", str(tmp_path / "r.yaml")], env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["data"]["root"] == str(deep)
