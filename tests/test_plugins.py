"""Plugin discovery: built-ins, entry points, files; errors that say what to fix."""

import sys
import textwrap

import pytest

from stylekit.errors import PluginError, UnknownComponentError
from stylekit.plugins import PluginManager

LOSS_PLUGIN = textwrap.dedent('''
    import torch
    import stylekit
    from pydantic import Field

    class MeanOptions(stylekit.TermOptions):
        target: float = Field(128.0, description="Target mean intensity.")

    class MeanIntensity(stylekit.LossTerm):
        """Pulls the output's mean intensity towards a target."""
        name = "{name}"
        Options = MeanOptions

        def forward(self, batch):
            return (batch.output.float().mean((1, 2, 3)) - self.options.target) ** 2

    @stylekit.hookimpl
    def stylekit_loss_terms():
        return [MeanIntensity]
''')


def test_builtins_are_registered_through_the_hooks():
    manager = PluginManager(entry_points=False)
    registry = manager.registry
    assert registry.names("loss") == ["content", "depth", "edge", "histogram", "style", "tv"]
    assert {"vgg16", "vgg19", "hed_vgg16", "timm"} <= set(registry.names("backbone"))
    assert registry.entry("loss", "style").source == "built-in"


def test_file_plugin(tmp_path):
    path = tmp_path / "my_loss.py"
    path.write_text(LOSS_PLUGIN.replace("{name}", "mean_intensity"))
    manager = PluginManager([path], entry_points=False)
    entry = manager.registry.entry("loss", "mean_intensity")
    assert entry.source == f"file {path.resolve()}"
    term = entry.cls({"weight": 2.0, "target": 10.0})
    assert term.weight == 2.0 and term.options.target == 10.0


def test_entry_point_plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "sk_demo_plugin").mkdir(parents=True)
    (pkg / "sk_demo_plugin" / "__init__.py").write_text(LOSS_PLUGIN.replace("{name}", "from_dist"))
    dist = pkg / "sk_demo_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sk-demo-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[stylekit]\ndemo = sk_demo_plugin\n")
    monkeypatch.syspath_prepend(str(pkg))
    manager = PluginManager(entry_points=True)
    entry = manager.registry.entry("loss", "from_dist")
    assert entry.source == "distribution sk-demo-plugin 1.2.3"
    sys.modules.pop("sk_demo_plugin", None)


def test_broken_entry_point_is_reported_not_fatal(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    (pkg / "sk_broken").mkdir(parents=True)
    (pkg / "sk_broken" / "__init__.py").write_text("raise ImportError('needs libfoo')\n")
    dist = pkg / "sk_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sk-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[stylekit]\nbroken = sk_broken\n")
    monkeypatch.syspath_prepend(str(pkg))
    with pytest.warns(UserWarning, match="sk-broken:broken .* failed to load .*ImportError: needs libfoo"):
        manager = PluginManager(entry_points=True)
    assert manager.failures == [("sk-broken:broken", "ImportError: needs libfoo")]
    assert "content" in manager.registry.names("loss")


def test_file_plugin_that_fails_to_import_names_file_and_exception(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import not_a_module_xyz\n")
    with pytest.raises(PluginError, match=r"bad.py failed to import: ModuleNotFoundError: .*not_a_module_xyz"):
        PluginManager([path], entry_points=False)


def test_duplicate_name_names_both_sources(tmp_path):
    path = tmp_path / "dup.py"
    path.write_text(LOSS_PLUGIN.replace("{name}", "style"))
    with pytest.raises(PluginError, match=r"duplicate loss name 'style': registered by stylekit.losses \(built-in\) "
                                          r"and by file:.*dup.py"):
        PluginManager([path], entry_points=False).registry


def test_unknown_name_lists_known_names():
    registry = PluginManager(entry_points=False).registry
    with pytest.raises(UnknownComponentError, match="unknown loss .stlye.; known loss names: content, depth, edge, histogram, style, tv"):
        registry.get("loss", "stlye")


def test_misspelt_hook_fails_loudly(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text("import stylekit\n\n@stylekit.hookimpl\ndef stylekit_los_terms():\n    return []\n")
    with pytest.raises(Exception, match="stylekit_los_terms"):
        PluginManager([path], entry_points=False)


def test_file_without_hooks_is_an_error(tmp_path):
    path = tmp_path / "nohooks.py"
    path.write_text("x = 1\n")
    with pytest.raises(PluginError, match="defines no stylekit hooks"):
        PluginManager([path], entry_points=False)


def test_plugins_command_lists_components(tmp_path):
    from typer.testing import CliRunner

    from stylekit.cli import app

    path = tmp_path / "my_loss.py"
    path.write_text(LOSS_PLUGIN.replace("{name}", "mean_intensity"))
    result = CliRunner().invoke(app, ["plugins", "--plugin", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in ("content", "style", "tv", "vgg16", "hed_vgg16", "mean_intensity", "built-in", "file ",
                 "target=128.0"):
        assert text in result.output
