"""``stylekit plugins new``: a ready-to-install plugin package from the templates in ``stylekit/templates``.

The package has a pyproject with the ``stylekit`` entry-point group, the plugin module, tests using
:mod:`stylekit.testing` with the options its recipe trains with, a recipe extending a copy of stylekit's
quickstart (so it works wherever the package goes) and a README. Templates are plain files with
``{{placeholders}}``; ``__package__`` in a path becomes the package name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .version import __version__
from .errors import StylekitError

KINDS = ("loss", "backbone", "depth")
SUMMARIES = {
    "loss": "A stylekit loss term.",
    "backbone": "A stylekit perception backbone.",
    "depth": "A stylekit depth network.",
}
USAGE = {
    "loss": "stylekit train recipes/{name}.yaml        # the quickstart plus `{name}`",
    "backbone": "stylekit train recipes/{name}.yaml        # the quickstart on the `{name}` backbone",
    "depth": "stylekit train recipes/{name}.yaml        # the quickstart with `{name}` as the depth term's φ1",
}
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


class ScaffoldError(StylekitError):
    """The plugin name or the target folder is not usable."""


@dataclass(frozen=True)
class PluginNames:
    name: str  # the component name in recipes: my_term
    dist: str  # the distribution: stylekit-my-term
    package: str  # the import package: stylekit_my_term
    cls: str  # the class: MyTerm

    @classmethod
    def from_name(cls, raw: str) -> "PluginNames":
        if not _NAME.match(raw):
            raise ScaffoldError(f"plugin name {raw!r}: use lowercase letters, digits, '_' or '-', starting with a "
                                "letter (e.g. `edge_loss`)")
        name = raw.replace("-", "_")
        return cls(name=name, dist="stylekit-" + name.replace("_", "-"), package="stylekit_" + name,
                   cls="".join(part.capitalize() for part in name.split("_") if part))


def _quickstart_files() -> dict[str, bytes]:
    """stylekit's quickstart recipe and the style images it names, to copy into the package's ``recipes/``.

    A copy, not an ``extends:`` path into this checkout: the package's recipe then works wherever the package
    goes (another folder, another machine, a git repository). Empty when stylekit is installed without its
    source checkout (the recipes are not part of the wheel).
    """
    import yaml

    quickstart = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    if not quickstart.is_file():
        return {}
    text = quickstart.read_text(encoding="utf-8")
    header = (f"# A copy of stylekit {__version__}'s recipes/quickstart.yaml (and the style image it names), made by\n"
              "# `stylekit plugins new` so that this package's recipes work wherever the package goes.\n")
    files = {"recipes/quickstart.yaml": (header + text).encode("utf-8")}
    for image in (yaml.safe_load(text).get("style") or {}).get("images", []):
        source = quickstart.parent / image
        if not Path(image).is_absolute() and source.is_file():
            files[f"recipes/{Path(image).as_posix()}"] = source.read_bytes()
    return files


_NO_QUICKSTART = ("# stylekit's recipes/quickstart.yaml was not found (stylekit installed without its source checkout):\n"
                  "# copy a recipe of yours to recipes/quickstart.yaml, or point `extends:` at one.\n")


def _templates(kind: str):
    root = resources.files("stylekit") / "templates" / "plugin"
    for part in ("common", kind):
        yield from _walk(root / part, ())


def _walk(node, prefix: tuple[str, ...]):
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            yield from _walk(child, prefix + (child.name,))
        elif child.name.endswith(".tmpl"):
            yield prefix + (child.name.removesuffix(".tmpl"),), child.read_text(encoding="utf-8")


def scaffold(raw_name: str, kind: str = "loss", output: str | os.PathLike = ".", *, force: bool = False,
             registry=None) -> Path:
    """Write the package ``OUTPUT/stylekit-NAME`` and return its path."""
    if kind not in KINDS:
        raise ScaffoldError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    names = PluginNames.from_name(raw_name)
    if registry is None:
        from .plugins import PluginManager

        registry = PluginManager(entry_points=False).registry
    if names.name in registry.names(kind):
        raise ScaffoldError(f"{kind} {names.name!r} is a built-in stylekit component; pick another name")
    target = Path(output).expanduser() / names.dist
    if target.exists() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} exists and is not empty; choose another -o DIR or pass --force")
    quickstart = _quickstart_files()
    values = {
        "name": names.name, "dist": names.dist, "package": names.package, "class": names.cls, "kind": kind,
        "summary": SUMMARIES[kind], "stylekit_version": __version__, "command": f"stylekit plugins new {raw_name} "
        f"--kind {kind}", "extends": ("" if quickstart else _NO_QUICKSTART) + "extends: quickstart.yaml",
        "usage": USAGE[kind].format(name=names.name),
        "quickstart_note": "a copy of stylekit's quickstart recipe and its style image, which your recipes extend"
                           if quickstart else "put the recipe your recipes extend here (see their `extends:` line)",
    }
    for parts, text in _templates(kind):
        rel = Path(*(names.package if p == "__package__" else p for p in parts))
        if rel.as_posix() == "recipes/recipe.yaml":
            rel = Path("recipes") / f"{names.name}.yaml"
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        leftover = re.findall(r"\{\{\w+\}\}", text)
        if leftover:  # a template bug, not a user error
            raise RuntimeError(f"template {rel} has unfilled placeholders {leftover}")
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel, data in quickstart.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(data)
    return target
