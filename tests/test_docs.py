"""The docs stay true: generated references up to date, every option described, the tutorial runs, links resolve."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stylekit.docs import documented_models, generated, missing_descriptions

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!--\s*(file|append|run|skip)\s*:?\s*(\S*)\s*-->$")


def test_generated_references_are_up_to_date():
    for path, text in generated(DOCS).items():
        assert path.is_file(), f"{path} is missing: run `python -m stylekit.docs`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is out of date: run `python -m stylekit.docs`"


def test_every_option_and_recipe_field_has_a_description():
    assert missing_descriptions(documented_models()) == []


def code_blocks(markdown: str):
    """(language, marker, argument, code) for each fenced block; the marker is the line just before the fence."""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        marker = MARKER.match(lines[i - 1].strip()) if i else None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        yield fence.group(1), marker.group(1) if marker else None, marker.group(2) if marker else "", \
            "\n".join(lines[i + 1:end]) + "\n"
        i = end + 1


class Shell:
    """The reader's terminal for the docs' `<!-- run -->` blocks: `cd` persists from line to line and block to
    block, and `pip install -e .` installs into a folder of the test's own (put on PYTHONPATH for later commands)
    instead of the environment running the tests; `stylekit` then runs as a new process, which finds the
    package through its entry point as an installed plugin would be found."""

    def __init__(self, root: Path, monkeypatch):
        self.root, self.cwd, self.monkeypatch = root, root, monkeypatch
        self.site: Path | None = None
        self.outputs: dict[str, str] = {}

    def run(self, line: str) -> None:
        args = shlex.split(line)
        if args[0] == "cd":
            self.cwd = (self.cwd / args[1]).resolve()
        elif args[0] == "cp":
            shutil.copy(self.cwd / args[1], self.cwd / args[2])
        elif args == ["pip", "install", "-e", "."]:
            self.site = self.root / ".site-packages"
            self.check(line, [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--no-index", "--target", str(self.site), "."], os.environ)
        elif args[0] == "stylekit" and self.site is not None:
            env = {key: value for key, value in os.environ.items() if key != "STYLEKIT_DISABLE_ENTRY_POINTS"}
            env.update(COLUMNS="250", PYTHONPATH=os.pathsep.join([str(self.site), str(ROOT), env.get("PYTHONPATH", "")]))
            self.check(line, [sys.executable, "-m", "stylekit", *args[1:]], env)
        elif args[0] == "stylekit":
            from stylekit import plugins
            from stylekit.cli import app

            # each command is a new process for the reader: plugin files are read afresh (the page edits them)
            plugins._managers.clear()
            for name in [name for name in sys.modules if name.startswith("stylekit_user_plugin_")]:
                self.monkeypatch.delitem(sys.modules, name)
            self.monkeypatch.chdir(self.cwd)
            result = CliRunner().invoke(app, args[1:], env={"COLUMNS": "200"})
            assert result.exit_code == 0, f"`{line}` failed:\n{result.output}\n{result.exception!r}"
            self.outputs[line] = result.output
        elif args[:3] == ["python", "-m", "pytest"]:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.cwd), os.environ.get("PYTHONPATH", "")])}
            self.check(line, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args[3:]], env)
        else:
            raise AssertionError(f"the docs test cannot run `{line}`; mark only stylekit, python -m pytest, "
                                 "pip install -e ., cd and cp commands <!-- run -->")

    def check(self, line: str, command: list[str], env) -> None:
        run = subprocess.run(command, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"`{line}` failed:\n{run.stdout}\n{run.stderr}"
        self.outputs[line] = run.stdout

    def run_block(self, code: str) -> None:
        for line in code.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                self.run(line.split("  #")[0].strip())


def test_plugin_tutorial_runs(tmp_path, monkeypatch):
    """Every ```python block of docs/writing-a-plugin.md runs, in order, in an empty folder; so do the shell
    steps marked <!-- run -->, the scaffolded package's included (its tests, its install, its recipe)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "tutorial"}
    shell = Shell(tmp_path, monkeypatch)
    executed = 0
    for language, marker, argument, code in code_blocks((DOCS / "writing-a-plugin.md").read_text(encoding="utf-8")):
        if marker == "skip":
            continue
        if marker == "file":
            (tmp_path / argument).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / argument).write_text(code)
        elif language == "python" and marker == "append":
            with (tmp_path / argument).open("a") as fh:
                fh.write(code)
        elif language == "python":
            monkeypatch.chdir(tmp_path)
            exec(compile(code, f"writing-a-plugin.md block {executed}", "exec"), namespace)
            executed += 1
        elif language == "bash" and marker == "run":
            shell.run_block(code)
    sys.modules.pop("my_terms", None)
    assert executed >= 6
    # what the page says the installed package shows
    listing = " ".join(shell.outputs["stylekit plugins"].split())
    assert "mean_colour" in listing and "distribution stylekit-mean-colour 0.1.0" in listing, listing
    assert "mean_colour:" in shell.outputs["stylekit config recipes/mean_colour.yaml"]


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", sorted([*DOCS.rglob("*.md"), ROOT / "README.md",
                                         *(ROOT / "plugins").glob("*/README.md")]), ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = markdown.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(r"\n#{1,%d} " % len(level), markdown) if m.start() > start]
    return markdown[start:min(ends, default=len(markdown))]


@pytest.fixture
def api_folder(tmp_path, monkeypatch):
    """What the Python API examples assume: a run `runs/quickstart` (a tiny random network) and `photo.jpg`."""
    import torch
    from PIL import Image

    from stylekit.checkpoint import save_checkpoint
    from stylekit.models.transformer import TransformerNet, TransformerOptions
    from stylekit.testing import make_images

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "runs" / "quickstart", 400, TransformerNet(TransformerOptions(channels=4)), {}, {})
    Image.open(make_images(tmp_path / "images", 1, size=(40, 32))[0]).save(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page, heading", [("docs/python-api.md", None), ("README.md", "### Python API"),
                                           ("docs/getting-started.md", "## Try a model")])
def test_python_api_examples_run(api_folder, page, heading):
    """The Python API's examples (its docs page, the README's section, getting started) run as written."""
    text = (ROOT / page).read_text(encoding="utf-8")
    text = section(text, heading) if heading else text
    namespace: dict = {"__name__": "api_docs"}
    blocks = [code for language, marker, _, code in code_blocks(text) if language == "python" and marker != "skip"]
    assert blocks, f"no python blocks in {page} {heading or ''}"
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page} block {i}", "exec"), namespace)
    assert (api_folder / "photo_wave.png").is_file()


def test_readme_component_table_lists_every_builtin():
    from stylekit.docs import builtin_registry

    table = section((ROOT / "README.md").read_text(encoding="utf-8"), "### Built-in components")
    listed: dict[str, set[str]] = {}
    for kind, names in re.findall(r"^\| (\w+) \| ([^|]+) \|", table, flags=re.M):
        listed.setdefault(kind, set()).update(re.findall(r"`(\w+)`", names))
    registry = builtin_registry()
    for kind in ("loss", "backbone", "depth", "metric"):
        assert listed.get(kind, set()) == set(registry.names(kind)), f"README's {kind} rows vs `stylekit plugins`"


def test_getting_started_names_every_quickstart_term():
    import yaml

    losses = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())["losses"]
    header = ", ".join(f"{name}×{options['weight']:g}" for name, options in losses.items())  # as the trainer prints
    assert f"`{header}" in (DOCS / "getting-started.md").read_text(encoding="utf-8")
