"""Imports point down the layers of docs/architecture.md, no modules import each other in a circle, and no
module is longer than 500 lines.

The import graph is read from the source with :mod:`ast` (nothing is imported). What counts as an import of a
stylekit module: every ``import``/``from … import`` of ``stylekit…`` or a relative module, wherever it is
written — at module level, under ``if TYPE_CHECKING:`` (a type is a dependency too), and inside functions
(a lazy import only defers the cost; the module still depends on what it imports). ``from pkg import name``
counts as importing ``pkg.name`` when that is a module, else ``pkg`` (its ``__init__``). The registry's
built-in plugin modules, imported by name, count as imports of :mod:`stylekit.plugins`. Importing a submodule
also runs its package's ``__init__``; that implicit step is not an edge (see docs/architecture.md on
``evaluate/``), but every ``__init__`` is checked as a module of its own.

- Layers: every import, module-level or lazy, goes to the same layer or a lower one.
- Cycles: none, counting every import. Module-level cycles break loading; a lazy one works but means two
  modules each need the other, i.e. one concept in two places.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stylekit
from stylekit.plugins import BUILTIN_PLUGINS

PACKAGE = Path(stylekit.__file__).parent

#: low → high; a module may import its own layer and those before it (docs/architecture.md has the same table)
LAYERS = ["foundation", "functional", "components", "composition", "runtime", "entry points"]

#: module (or package: everything in it) → layer; the longest matching name wins
PLACES = {
    # foundation: used everywhere, knows nothing of stylekit's components
    "stylekit.errors": "foundation", "stylekit.version": "foundation",
    "stylekit.yamlio": "foundation", "stylekit.hardware": "foundation",
    # functional: pure tensor maths and transforms, no state, no registry
    "stylekit.functional": "functional", "stylekit.evaluate.functional": "functional",
    "stylekit.evaluate.hierarchical": "functional",
    "stylekit.depth.transforms": "functional",
    # components: what plugins provide, their contracts and the weights they load
    "stylekit.components": "components", "stylekit.hookspecs": "components", "stylekit.features": "components",
    "stylekit.metrics": "components", "stylekit.evaluate.builtin_metrics": "components",
    "stylekit.evaluate.looks": "components", "stylekit.weights": "components", "stylekit.backbones": "components",
    "stylekit.depth": "components", "stylekit.losses": "components", "stylekit.loggers": "components",
    "stylekit.models": "components",
    # composition: a recipe, the registry and the data turned into a training objective
    "stylekit.plugins": "composition", "stylekit.config": "composition", "stylekit.composer": "composition",
    "stylekit.data": "composition", "stylekit.recipe_model": "composition",
    # runtime: running it — run folders, training, stylizing, evaluating, ablating, exporting; the session
    "stylekit.runs": "runtime", "stylekit.runlock": "runtime", "stylekit.checkpoint": "runtime",
    "stylekit.card": "runtime", "stylekit.trainer": "runtime", "stylekit.multistyle": "runtime",
    "stylekit.onnx_backend": "runtime",
    "stylekit.finite": "runtime",
    "stylekit.distributed": "runtime", "stylekit.preflight": "runtime", "stylekit.session": "runtime",
    "stylekit.stylize": "runtime", "stylekit.stylizer": "runtime", "stylekit.pngstream": "runtime", "stylekit.tiling": "runtime",
    "stylekit.video": "runtime", "stylekit.viz": "runtime", "stylekit.evaluate": "runtime",
    "stylekit.ablate": "runtime", "stylekit.export": "runtime", "stylekit.bench": "runtime",
    "stylekit.api": "runtime", "stylekit.run_handle": "runtime", "stylekit.demo": "runtime", "stylekit.testing": "runtime",
    # entry points: the command line, generated docs, scaffolding, and the package's public face
    "stylekit": "entry points", "stylekit.__main__": "entry points", "stylekit.cli": "entry points",
    "stylekit.docs": "entry points", "stylekit.scaffold": "entry points",
}

#: (importer, imported) → why this upward import is right. Empty: the tree has none.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package ``__init__``) for every module under stylekit/."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported module, at module level?, line) for each stylekit import in the file."""
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = not module_level or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, not local, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".")[: len(name.split(".")) + is_package - child.level]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in known else target, not local, child.lineno))
            visit(child, not local)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return [(target, top, line) for target, top, line in found if target == "stylekit" or
            target.startswith("stylekit.")]


def layer_of(module: str) -> str | None:
    matches = [place for place in PLACES if module == place or module.startswith(place + ".")]
    return PLACES[max(matches, key=len)] if matches else None


def graph() -> dict[str, list[tuple[str, bool, int]]]:
    known = modules()
    edges = {name: imports(name, path, is_package, set(known)) for name, (path, is_package) in known.items()}
    edges["stylekit.plugins"] += [(module, False, 0) for module in BUILTIN_PLUGINS]  # imported by name, on use
    return edges


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if layer_of(name) is None]
    assert not unplaced, (f"{unplaced}: give each a layer in PLACES (tests/test_architecture.py) and in "
                          "docs/architecture.md")


def test_imports_point_down_the_layers():
    problems = []
    for importer, targets in graph().items():
        for target, module_level, line in targets:
            low, high = layer_of(target), layer_of(importer)
            if low is None or high is None or LAYERS.index(low) <= LAYERS.index(high):
                continue
            if (importer, target) not in EXCEPTIONS:
                problems.append(f"{importer} ({high}) imports {target} ({low}) at line {line}"
                                f"{'' if module_level else ' (lazily)'}")
    assert not problems, ("imports must point down (foundation → functional → components → composition → "
                          "runtime → entry points); move the import or the helper it needs:\n  "
                          + "\n  ".join(problems))


def find_cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as the path that closes it (``a → b → a``)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles():
    # the root package runs first whatever is imported, so it is no module's dependency
    edges = {name: sorted({t for t, _, _ in targets if t not in (name, "stylekit")})
             for name, targets in graph().items()}
    cycles = find_cycles(edges)
    assert not cycles, ("import cycles (lazy imports count):\n  " + "\n  ".join(" → ".join(c) for c in cycles)
                        + "\nmove what both need into one of them, or into a lower module")


def test_the_check_sees_lazy_and_type_checking_imports_and_cycles(tmp_path):
    """The parser finds imports inside functions and TYPE_CHECKING blocks, relative or absolute; cycles are found."""
    source = tmp_path / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runs import RunDir\n"
                      "def f():\n    import stylekit.cli\n    from . import base\n")
    found = imports("stylekit.losses.mod", source, False, {"stylekit.losses.base"})
    assert found == [("stylekit.runs", True, 3), ("stylekit.cli", False, 5), ("stylekit.losses.base", False, 6)]
    assert layer_of("stylekit.losses.mod") == "components" and layer_of("stylekit.evaluate.runner") == "runtime"
    assert layer_of("stylekit.evaluate.builtin_metrics") == "components"
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]


#: the most lines a module may have: past it, a module holds more than one job (split it by job, as runs/ is)
MAX_MODULE_LINES = 500


def test_every_module_fits_in_one_reading():
    long = {name: n for name, (path, _) in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, (f"modules over {MAX_MODULE_LINES} lines: {long}; split each by job (one module per job, "
                      "like stylekit/runs/ or stylekit/cli/) and place the new modules in PLACES")
