"""What a run folder may import: a run folder is data that may come from anywhere, so resuming imports the
plugins its config.yaml lists only when the user vouches for them (given again, or installed), or says
``--trust-run-plugins``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable

from ..errors import StylekitError
from ..plugins import plugin_file
from .folder import CONFIG_FILE, RunDir


class UntrustedPluginError(StylekitError):
    """Resuming would import plugin code that came with the run folder."""


def untrusted_plugins(run: RunDir, plugins: Iterable[str], given: Iterable[str] = ()) -> list[str]:
    """Plugins the run's config lists that are neither given now nor installed.

    A file (``.py`` or any path) is trusted only when given again; a module name when Python would
    import it from outside the run folder (an installed package). Finding a top-level module's
    location imports nothing.
    """
    given_set = {_plugin_key(g) for g in given}
    root = run.path.resolve()
    out = []
    for plugin in plugins:
        text = str(plugin)
        if _plugin_key(text) in given_set:
            continue
        if plugin_file(text) is not None:
            out.append(text)
            continue
        try:
            spec = importlib.util.find_spec(text.split(".")[0])
        except (ImportError, ValueError):
            spec = None
        locations = [spec.origin, *(spec.submodule_search_locations or [])] if spec is not None else []
        if any(loc and (Path(loc).resolve() == root or root in Path(loc).resolve().parents) for loc in locations):
            out.append(text)
    return out

def check_plugins(run: RunDir, plugins: Iterable[str], given: Iterable[str] = (), trust: bool = False) -> None:
    """Refuse (one paragraph, listing them) to import plugins that came with the run folder."""
    untrusted = [] if trust else untrusted_plugins(run, plugins, given)
    if untrusted:
        raise UntrustedPluginError(
            f"--resume {run.path}: its {CONFIG_FILE} lists plugin(s) that were not given on the command line "
            f"and are not installed: {', '.join(untrusted)}. Resuming would run their code, and a run folder "
            "is data that may come from anywhere, so nothing was imported. If you trust this run folder, "
            "pass --trust-run-plugins, or give each plugin again with --plugin PATH_OR_MODULE.")


def _plugin_key(text: str) -> str:
    file = plugin_file(text)
    return str(file.resolve()) if file is not None else str(text)


