"""What a run is called, and what it records about how it was asked for.

A run's name says what changes its network: the recipe (and preset), the dropped or kept terms and each
``--set`` of a key that can change the trained weights (:data:`NAME_IGNORED_KEYS` lists those that cannot).
``stylekit train`` and ``stylekit ablate`` name runs alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from ..config import RENAMED_KEYS, parse_override
from .folder import safe_name

#: Recipe keys (dotted prefixes) whose value never changes the trained network: logging cadence and loggers,
#: where runs go, speed settings, which device, names and notes. Run names leave changes to them out, in
#: ``stylekit train`` and ``stylekit ablate`` alike. (``precision`` and ``data.cache_dir`` do change results.)
NAME_IGNORED_KEYS = ("log", "output_dir", "performance", "data.workers", "device", "name", "description",
                     "plugins", "preset", "presets", "extends", "style.license", "style.attribution")
#: Run names longer than this end in a hash of the full name instead (``stylekit runs`` stays one line a run).
NAME_LIMIT = 60
#: prefixes left out of names where the rest is unambiguous: ``losses.style.weight`` → ``style.weight``
_NAME_PREFIXES = ("losses.", "schedule.")


def changes_model(key: str) -> bool:
    """Whether a ``--set`` of dotted ``key`` can change the trained network (see :data:`NAME_IGNORED_KEYS`)."""
    key = RENAMED_KEYS.get(key, key)
    return not any(key == k or key.startswith(k + ".") for k in NAME_IGNORED_KEYS)


def shorten_name(name: str, limit: int = NAME_LIMIT) -> str:
    """``name`` if at most ``limit`` characters, else its start and 8 hex digits of its sha1 (stable, distinct)."""
    if len(name) <= limit:
        return name
    import hashlib

    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:limit - len(digest) - 1].rstrip('-_.,=+')}-{digest}"


def run_name(recipe_name: str, overrides: Iterable[str] = (), without: Iterable[str] = (),
             only: Iterable[str] = (), preset: str | None = None) -> str:
    """A short run name from what changes the model, e.g. ``quickstart-without-depth-depth.weight=10``.

    The one naming rule of ``stylekit train`` and ``stylekit ablate``: the recipe's name (and preset), the
    dropped or kept terms, then each ``--set`` whose key can change the network (:func:`changes_model`: not
    ``log.*``, ``performance.*``, ``output_dir``…) sorted by key, shortened with a hash above
    :data:`NAME_LIMIT` characters.
    """
    parts = [recipe_name + (f"-{preset}" if preset else "")]
    parts += [f"without-{t}" for t in without]
    if list(only):
        parts.append("only-" + "+".join(only))
    changed: dict[str, str] = {}
    for text in overrides:
        keys, value = parse_override(text)
        key = ".".join(keys)
        if not changes_model(key):
            continue
        for prefix in _NAME_PREFIXES:
            key = key.removeprefix(prefix)
        changed[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)  # the last --set wins
    parts += [f"{key}={value}" for key, value in sorted(changed.items())]  # the order typed does not matter
    return shorten_name(safe_name("-".join(parts), limit=10_000))


def run_info(recipe_file: str | Path | None, overrides: Sequence[str] = (), without: Sequence[str] = (),
             only: Sequence[str] = (), preset: str | None = None, name: str = "", **extra: Any) -> dict[str, Any]:
    """What ``run.json`` records about how a run was asked for (``recipe_file`` None: a recipe given as a mapping,
    from Python); the trainer adds versions and times."""
    return {"recipe_file": str(Path(recipe_file).resolve()) if recipe_file is not None else None,
            "overrides": list(overrides), "without": list(without),
            "only": list(only), "preset": preset, "display_name": name, **extra}


def describe_run_changes(info: dict[str, Any]) -> str:
    """'without tv; style.weight=2' from run.json (what the command line changed), then each changing resume."""
    parts = [_describe_changes(info)] if _describe_changes(info) else []
    for resume in info.get("resumes") or []:
        if isinstance(resume, dict) and resume.get("changed"):
            what = _describe_changes(resume) or ", ".join(resume["changed"])
            parts.append(f"resumed at step {resume.get('step', '?')} with {what}")
    return "; ".join(parts)


def _describe_changes(info: dict[str, Any]) -> str:
    parts = [f"without {t}" for t in info.get("without") or []]
    if info.get("only"):
        parts.append("only " + ",".join(info["only"]))
    for text in info.get("overrides") or []:
        key, _, value = str(text).partition("=")
        parts.append(f"{key.removeprefix('losses.')}={value}")
    return "; ".join(parts)


