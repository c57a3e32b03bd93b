"""Run folders: the one place that knows their layout, records, status, writer lock and checkpoints.

A run folder holds::

    config.yaml           the fully resolved recipe (rewritten when a resume changes it; run.json says how)
    run.json              name, recipe, what the command line changed, each resume, versions, git commit
    status.json           running / finished / failed / interrupted, step, reason, pid and host
    metrics.jsonl         one line per logged step: every term, unweighted and weighted (logger ``jsonl``)
    tensorboard/          event files (logger ``tensorboard``); any logger's own folder is named after it
    samples/step_N.png    content | stylized grids
    loss_curves.png
    checkpoints/step_N/   model.safetensors, meta.json, train_state.pt (see stylekit.checkpoint)
    checkpoints/latest    the name of the newest complete checkpoint
    eval/metrics.json     what ``stylekit evaluate -o RUN/eval`` measured
    .lock                 the writer lock (see stylekit.runlock)

:class:`RunDir` writes and reads these; no other module spells their names. A run folder is data
that may come from another machine or another person: links and paths inside it must resolve
inside it, and nothing in it is imported as code unless the user says so (:meth:`RunDir.check_plugins`).
Reading never imports the trainer, so listings work on runs copied from elsewhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from rich.table import Table

from .config import RENAMED_KEYS, safe_yaml_load, upgrade_keys
from .errors import StylekitError
from .runlock import FileLock, Holder, RunLockedError, lock_holder, process_alive

__all__ = ["RunDir", "RunLockedError", "RunPathError", "UntrustedPluginError", "RunRecord", "atomic_write_text",
           "changes_model", "find_runs", "is_run_dir", "read_run", "run_info", "run_name", "shorten_name"]

CONFIG_FILE = "config.yaml"
INFO_FILE = "run.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
LOSS_CURVES_FILE = "loss_curves.png"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STEP_PREFIX = "step_"  # checkpoint folders and sample grids: step_0000500
EVAL_DIR = "eval"
EVAL_METRICS_FILE = "metrics.json"
LOCK_FILE = ".lock"
# inside a checkpoint folder (the format itself is stylekit.checkpoint's)
MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
STATE_FILE = "train_state.pt"

RUN_MARKERS = (INFO_FILE, STATUS_FILE, CONFIG_FILE)
#: what a finished run leaves, for messages
RUN_CONTENTS = f"{CONFIG_FILE}, {METRICS_FILE}, {SAMPLES_DIR}/, {LOSS_CURVES_FILE}, {CHECKPOINTS_DIR}/"


class RunPathError(StylekitError):
    """A link or path inside a run folder leads outside it."""


class UntrustedPluginError(StylekitError):
    """Resuming would import plugin code that came with the run folder."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename it into place (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_json_line(path: Path) -> dict[str, Any]:
    """The last complete line of a JSON-lines file (read from the end: files of long runs are large)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a half-written or cut line
        if isinstance(row, dict) and "step" in row:
            return row
    return {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- names and what a run records about itself ------------------------------------

def safe_name(text: str, limit: int = 120) -> str:
    """A folder name from free text: anything but word characters and ``.=,+-`` becomes ``_``."""
    return re.sub(r"[^\w.=,+\-]", "_", text)[:limit]


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
    from .config import parse_override

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


def run_info(recipe_file: str | Path, overrides: Sequence[str] = (), without: Sequence[str] = (),
             only: Sequence[str] = (), preset: str | None = None, name: str = "", **extra: Any) -> dict[str, Any]:
    """What ``run.json`` records about how a run was asked for (the trainer adds versions and times)."""
    return {"recipe_file": str(Path(recipe_file).resolve()), "overrides": list(overrides), "without": list(without),
            "only": list(only), "preset": preset, "display_name": name, **extra}


def describe_run_changes(info: dict[str, Any]) -> str:
    """'without tv; style.weight=2' from run.json (what the command line changed), then each changing resume."""
    parts = [_describe_changes(info)] if _describe_changes(info) else []
    for resume in info.get("resumes") or []:
        if isinstance(resume, dict) and resume.get("changed"):
            what = _describe_changes(resume) or ", ".join(resume["changed"])
            parts.append(f"resumed at step {resume.get('step', '?')} with {what}")
    return "; ".join(parts)


def _default_of(key: str) -> Any:
    """The recipe schema's default for dotted ``key`` in a recipe section (``MISSING``: required or not a field)."""
    from pydantic import BaseModel

    from .config import Recipe

    model: Any = Recipe
    *sections, name = key.split(".")
    for part in sections:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or name not in model.model_fields:
        return MISSING
    field = model.model_fields[name]
    if field.is_required():
        return MISSING
    default = field.get_default(call_default_factory=True)
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else default


def _describe_changes(info: dict[str, Any]) -> str:
    parts = [f"without {t}" for t in info.get("without") or []]
    if info.get("only"):
        parts.append("only " + ",".join(info["only"]))
    for text in info.get("overrides") or []:
        key, _, value = str(text).partition("=")
        parts.append(f"{key.removeprefix('losses.')}={value}")
    return "; ".join(parts)


def environment_info() -> dict[str, Any]:
    """Versions of stylekit and its main dependencies, and the git commit stylekit was run from."""
    import timm
    import torch
    import torchvision

    from .version import __version__

    info = {"stylekit": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "python": platform.python_version()}
    try:
        root = Path(__file__).resolve().parent

        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)

        # Only if git tracks this very package: a copy in site-packages inside another repo's venv must not
        # report that repo's commit.
        if git("ls-files", "--error-unmatch", "__init__.py").returncode == 0:
            commit = git("rev-parse", "HEAD")
            if commit.returncode == 0:
                info["git_commit"] = commit.stdout.strip()
                info["git_dirty"] = bool(git("status", "--porcelain", "--", ".").stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    if "git_commit" not in info:  # installed from a git URL: pip recorded the commit (PEP 610 direct_url.json)
        try:
            from importlib.metadata import distribution

            vcs = json.loads(distribution("stylekit").read_text("direct_url.json") or "{}").get("vcs_info") or {}
            if vcs.get("commit_id"):
                info["git_commit"] = vcs["commit_id"]
        except Exception:  # no metadata (running from a source tree), malformed file…
            pass
    return info


def effective_state(status: dict[str, Any]) -> tuple[str, str]:
    """(state, reason); a 'running' run whose process is gone on this host reads as interrupted."""
    state, reason = str(status.get("state", "unknown")), str(status.get("reason", ""))
    if state == "running":
        pid, host = status.get("pid"), status.get("host")
        if isinstance(pid, int) and (host in (None, socket.gethostname())) and not process_alive(pid):
            return "interrupted", f"process {pid} ended without a final status (killed?) at step {status.get('step', '?')}"
    return state, reason


# -- the run folder ----------------------------------------------------------------

class RunDir:
    """One run folder: where each record lives, reading and writing them, its writer lock, its checkpoints.

    The lock is re-entrant per instance: whoever creates a run (:meth:`create`) can hand the same
    instance to the trainer, which takes it again while it writes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._lock: FileLock | None = None
        self._depth = 0

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # -- layout ------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def info(self) -> Path:
        return self.path / INFO_FILE

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_DIR

    @property
    def loss_curves(self) -> Path:
        return self.path / LOSS_CURVES_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def eval_metrics(self) -> Path:
        return self.path / EVAL_DIR / EVAL_METRICS_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def logger_dir(self, logger: str) -> Path:
        """A logger's own folder, named after it (``RUN/tensorboard/``), created on first use."""
        reserved = {CONFIG_FILE, INFO_FILE, STATUS_FILE, METRICS_FILE, SAMPLES_DIR, LOSS_CURVES_FILE,
                    CHECKPOINTS_DIR, EVAL_DIR, LOCK_FILE}
        if logger in reserved or safe_name(logger) != logger or logger.startswith("."):
            raise StylekitError(f"logger name {logger!r} cannot name a folder in a run folder (reserved or not a "
                                "plain name); rename the logger")
        path = self.inside(self.path) / logger
        path.mkdir(parents=True, exist_ok=True)
        return self.inside(path)

    @staticmethod
    def step_name(step: int) -> str:
        return f"{STEP_PREFIX}{step:07d}"

    @staticmethod
    def step_of(path: Path) -> int | None:
        """The step a checkpoint folder or sample grid is named after (None: not such a name)."""
        text = Path(path).name.removeprefix(STEP_PREFIX).removesuffix(".png")
        return int(text) if Path(path).name.startswith(STEP_PREFIX) and text.isdigit() else None

    def sample_file(self, step: int) -> Path:
        return self.samples / f"{self.step_name(step)}.png"

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints / self.step_name(step)

    def holds_run(self) -> bool:
        """Has a run written its records here?"""
        return self.path.is_dir() and any((self.path / m).is_file() for m in RUN_MARKERS)

    def is_empty(self) -> bool:
        """A folder (or nothing) without any entry but the lock file: free for a new run."""
        if not self.path.exists():
            return True
        return self.path.is_dir() and not any(p.name != LOCK_FILE for p in self.path.iterdir())

    @classmethod
    def containing(cls, path: str | Path) -> RunDir | None:
        """The run a checkpoint folder (or a file in one) belongs to, if it lies in a run's ``checkpoints/``."""
        path = Path(path)
        ckpt = path.parent if path.is_file() else path
        if ckpt.parent.name != CHECKPOINTS_DIR:
            return None
        run = cls(ckpt.parent.parent)
        return run if run.holds_run() else None

    # -- containment -------------------------------------------------------------
    def inside(self, path: str | Path) -> Path:
        """``path`` with links resolved; a :class:`RunPathError` if that leaves the run folder."""
        try:
            root = self.path.resolve()
            target = Path(path).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise RunPathError(f"{path} in run folder {self.path} cannot be resolved ({exc}); fix or remove it") from None
        if target != root and root not in target.parents:
            try:
                shown = Path(path).relative_to(self.path)
            except ValueError:
                shown = Path(path)
            raise RunPathError(
                f"{self.path}: {shown} points outside the run folder (to {target}). A run folder is data that may "
                f"come from anywhere, so stylekit follows only links and paths that stay inside it; replace {shown} "
                "with a real file or folder (or a link within the run), or remove it.")
        return target

    def check_links(self) -> None:
        """Every symlink in the folder (at any depth) stays inside it; checked before a run is resumed."""
        for folder, dirs, files in os.walk(self.path):
            for entry in [*dirs, *files]:
                candidate = Path(folder) / entry
                if candidate.is_symlink():
                    self.inside(candidate)

    # -- records -----------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        try:
            # bounded like a recipe: a crafted config.yaml (alias bomb) in a run folder cannot exhaust memory
            data = safe_yaml_load(self.inside(self.config).read_text(), str(self.config)) or {}
        except (OSError, StylekitError):
            return {}
        # a run written before a key was renamed reads as if written now (no warning: nothing to change)
        return upgrade_keys(data, str(self.config), warn=False) if isinstance(data, dict) else {}

    def read_info(self) -> dict[str, Any]:
        return read_json(self.inside(self.info))

    def read_status(self) -> dict[str, Any]:
        return read_json(self.inside(self.status))

    def last_metrics(self) -> dict[str, Any]:
        """The last complete line of ``metrics.jsonl``."""
        return _last_json_line(self.inside(self.metrics))

    def state(self) -> tuple[str, str]:
        """(state, reason) as ``stylekit runs`` shows it; a dead 'running' writer reads as interrupted."""
        status = self.read_status()
        return effective_state(status) if status else ("unknown", f"no {STATUS_FILE}")

    def start(self, config_text: str, recipe_name: str, info: dict[str, Any]) -> None:
        """Write a new run's ``config.yaml`` and ``run.json`` (versions, command, time added)."""
        atomic_write_text(self.config, config_text)
        record = {"name": self.name, "recipe": recipe_name, "created": _now(), "command": sys.argv, **info,
                  "environment": environment_info()}
        atomic_write_text(self.info, json.dumps(record, indent=2) + "\n")

    def record_timing(self, timing: dict[str, Any]) -> None:
        """Note in ``run.json`` how long training took and how fast it ran (the latest session's speed;
        ``wall_time_s`` counts every session of a resumed run), so time claims come from the run itself."""
        info = self.read_info()
        if info:
            info["timing"] = timing
            atomic_write_text(self.info, json.dumps(info, indent=2) + "\n")

    def write_status(self, state: str, step: int, iterations: int, reason: str = "", skipped_images: int = 0) -> None:
        status = {"state": state, "step": step, "iterations": iterations, "reason": reason,
                  "skipped_images": skipped_images,
                  "pid": os.getpid(), "host": socket.gethostname(),  # lets `stylekit runs` spot a dead "running" run
                  "updated": _now()}
        atomic_write_text(self.status, json.dumps(status, indent=2) + "\n")

    def record_resume(self, step: int, config_text: str, changes: dict[str, Any]) -> list[str]:
        """Note a resume in ``run.json`` and, when it changes the recipe, rewrite ``config.yaml``.

        ``changes`` are the command line's (``overrides``, ``without``, ``only``); the dotted keys whose
        value differs are recorded as ``changed``, so ``stylekit runs`` can show them. Returns those keys.
        """
        old, new = self.read_config(), safe_yaml_load(config_text, "the resumed recipe") or {}
        diff = config_diff([old, new]) if old else {}
        # a key this stylekit added to the recipe since the run started, at its default, changed nothing
        changed = [k for k, (before, after) in diff.items() if not (before is MISSING and after == _default_of(k))]
        model_keys = [k for k in changed if k.startswith("model.")]
        if model_keys:
            raise StylekitError(
                f"--resume {self.path}: {', '.join(model_keys)} would change the network the checkpoint holds "
                "weights for; a resumed run keeps its model options (start a new run to change them)")
        info = self.read_info()
        entry = {"step": step, "time": _now(), "command": sys.argv,
                 **{k: list(v) for k, v in changes.items() if k in ("overrides", "without", "only") and v},
                 "changed": changed}
        info.setdefault("resumes", []).append(entry)
        atomic_write_text(self.info, json.dumps(info, indent=2) + "\n")
        if changed:
            atomic_write_text(self.config, config_text)
        return changed

    def drop_metrics_after(self, step: int) -> None:
        """Forget lines logged after ``step`` (the checkpoint a resume starts from): they will be logged again."""
        path = self.inside(self.metrics)
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if line.strip() and json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill
        atomic_write_text(self.metrics, "".join(line + "\n" for line in kept))

    def open_metrics(self):
        """``metrics.jsonl`` opened for appending (the caller closes it)."""
        return open(self.inside(self.metrics), "a")

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint_dirs(self) -> list[Path]:
        """Complete checkpoint folders, oldest first (a folder being written has a dot name until renamed)."""
        if not (self.checkpoints.is_dir() or self.checkpoints.is_symlink()):
            return []
        self.inside(self.checkpoints)
        found = []
        for candidate in sorted(self.checkpoints.glob(f"{STEP_PREFIX}*")):
            if self.step_of(candidate) is not None and (candidate / MODEL_FILE).is_file():
                self.inside(candidate / MODEL_FILE)
                found.append(candidate)
        return found

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint ``checkpoints/latest`` names, else the newest complete one; None if there is none.

        The pointer, the folder and its model file must resolve inside the run folder.
        """
        root = self.checkpoints
        if not (root.is_dir() or root.is_symlink()):
            return None
        self.inside(root)
        pointer = root / LATEST_FILE
        if pointer.is_symlink() or pointer.exists():
            target = self.inside(pointer)
            if target.is_dir():  # a link to the checkpoint folder
                candidate = target
            else:  # the folder's name, as save_checkpoint writes it
                try:
                    candidate = root / target.read_text().strip()
                except OSError:
                    candidate = root
            if candidate != root and (candidate / MODEL_FILE).is_file():
                self.inside(candidate)
                self.inside(candidate / MODEL_FILE)
                return candidate
        found = self.checkpoint_dirs()
        return found[-1] if found else None

    def set_latest(self, checkpoint: Path) -> None:
        atomic_write_text(self.checkpoints / LATEST_FILE, Path(checkpoint).name + "\n")

    def prune_checkpoints(self, keep: int) -> None:
        import shutil

        for old in sorted(self.checkpoints.glob(f"{STEP_PREFIX}*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    # -- the writer lock -------------------------------------------------------------
    def acquire(self) -> RunDir:
        """Become the folder's one writer (again, if this instance already is); see :mod:`stylekit.runlock`."""
        if self._lock is None:
            lock = FileLock(self.lock_file, refusal=(
                "{path} is being written by {holder}. A run folder has one writer at a time, so this run was not "
                "started: let that run finish, or stop it (Ctrl-C checkpoints it; kill {pid}) and continue it with "
                "`stylekit train --resume {path}`; or train into another folder (another --run-dir, or no "
                "--run-dir for a fresh name)."))
            lock.acquire()
            self._lock = lock
        self._depth += 1
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        self._depth -= 1
        if self._depth <= 0:
            self._lock.release()
            self._lock, self._depth = None, 0

    def __enter__(self) -> RunDir:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def stale_writer(self) -> Holder | None:
        """The writer whose lock was found left behind when this instance took it (it had died)."""
        return self._lock.stale if self._lock is not None else None

    def writer(self) -> Holder | None:
        """The process writing this run now (None: nobody), without taking the lock."""
        return None if self._lock is not None else lock_holder(self.lock_file)

    @classmethod
    def create(cls, output_dir: str | Path, name: str) -> RunDir:
        """A fresh folder for a new run, locked: ``OUTPUT_DIR/NAME``, else ``NAME-2``, ``NAME-3``…

        A folder that holds anything (a finished, failed or running run, any file) is never reused,
        nor an empty one another process has just claimed.
        """
        base = Path(output_dir).expanduser()
        for n in range(1, 100000):
            run = cls(base / (name if n == 1 else f"{name}-{n}"))
            if not run.is_empty():
                continue
            run.path.mkdir(parents=True, exist_ok=True)
            try:
                run.acquire()
            except RunLockedError:
                continue
            if run.is_empty():
                return run
            run.release()  # another process wrote into it meanwhile
        raise StylekitError(f"no free run folder named {name}-N under {base}")

    # -- what a run folder may import ---------------------------------------------------
    def untrusted_plugins(self, plugins: Iterable[str], given: Iterable[str] = ()) -> list[str]:
        """Plugins the run's config lists that are neither given now nor installed.

        A file (``.py`` or any path) is trusted only when given again; a module name when Python would
        import it from outside the run folder (an installed package). Finding a top-level module's
        location imports nothing.
        """
        given_set = {_plugin_key(g) for g in given}
        root = self.path.resolve()
        out = []
        for plugin in plugins:
            text = str(plugin)
            if _plugin_key(text) in given_set:
                continue
            if _is_plugin_path(text):
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

    def check_plugins(self, plugins: Iterable[str], given: Iterable[str] = (), trust: bool = False) -> None:
        """Refuse (one paragraph, listing them) to import plugins that came with the run folder."""
        untrusted = [] if trust else self.untrusted_plugins(plugins, given)
        if untrusted:
            raise UntrustedPluginError(
                f"--resume {self.path}: its {CONFIG_FILE} lists plugin(s) that were not given on the command line "
                f"and are not installed: {', '.join(untrusted)}. Resuming would run their code, and a run folder "
                "is data that may come from anywhere, so nothing was imported. If you trust this run folder, "
                "pass --trust-run-plugins, or give each plugin again with --plugin PATH_OR_MODULE.")


def _is_plugin_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or os.sep in text or Path(text).expanduser().exists()


def _plugin_key(text: str) -> str:
    return str(Path(text).expanduser().resolve()) if _is_plugin_path(str(text)) else str(text)


# -- reading runs back ---------------------------------------------------------------

@dataclass
class RunRecord:
    """One run directory as read from disk; missing files leave fields empty."""

    path: Path
    name: str
    recipe: str = ""
    changes: str = ""
    state: str = "unknown"
    reason: str = ""
    step: int = 0
    iterations: int = 0
    final: dict[str, float] = field(default_factory=dict)  # unweighted term values at the last logged step
    final_weighted: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)


def _metric_value(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
        return float(value["mean"])  # {mean, ci_low, ci_high, n}: the mean is the summary value
    return None


def read_eval_metrics(run_dir: str | Path) -> dict[str, float]:
    """Summary values of ``RUN/eval/metrics.json`` (its ``summary`` mapping if it has one).

    Accepts ``{metric: value}``, ``{metric: {"mean": …}}`` and, per evaluated source,
    ``{source: {metric: …}}`` (the source named like the run, else the only/first one).
    """
    run = RunDir(run_dir)
    data = read_json(run.inside(run.eval_metrics))
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else data
    if not summary:
        return {}
    direct = {k: _metric_value(v) for k, v in summary.items()}
    if any(v is not None for v in direct.values()):
        return {k: v for k, v in direct.items() if v is not None}
    per_source = {k: v for k, v in summary.items() if isinstance(v, dict)}
    if not per_source:
        return {}
    name = run.name
    source = per_source.get(name) or next((v for k, v in per_source.items() if name in k or k in name),
                                          next(iter(per_source.values())))
    values = {k: _metric_value(v) for k, v in source.items()}
    return {k: v for k, v in values.items() if v is not None}


def read_run(path: str | Path) -> RunRecord:
    run = RunDir(path)
    try:
        info, status, config, row = run.read_info(), run.read_status(), run.read_config(), run.last_metrics()
        evals = read_eval_metrics(run.path)
    except RunPathError as exc:  # listed, not followed
        return RunRecord(path=run.path, name=run.name, state="refused", reason=str(exc))
    state, reason = effective_state(status) if status else ("unknown", f"no {STATUS_FILE}")
    terms = row.get("terms", {}) if isinstance(row.get("terms"), dict) else {}
    return RunRecord(
        path=run.path, name=run.name, recipe=str(info.get("recipe") or config.get("name") or ""),
        changes=describe_run_changes(info), state=state, reason=reason,
        step=max(int(status.get("step") or 0), int(row.get("step") or 0)),  # status.json is written at start/end only
        iterations=int(status.get("iterations") or (config.get("schedule") or {}).get("iterations") or 0),
        final={k: float(v["raw"]) for k, v in terms.items() if isinstance(v, dict) and "raw" in v},
        final_weighted={k: float(v["weighted"]) for k, v in terms.items() if isinstance(v, dict) and "weighted" in v},
        eval=evals, config=config, info=info, status=status)


def is_run_dir(path: Path) -> bool:
    return RunDir(path).holds_run()


def find_runs(root: str | Path, depth: int = 3) -> list[Path]:
    """Run directories at or below ``root`` (a grid folder, ``runs/``…), sorted by path."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise StylekitError(f"{root} is not a folder (give a run directory or a folder of runs, e.g. runs/)")
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt = []
        for folder in level:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                (found if is_run_dir(child) else nxt).append(child)
        level = nxt
    return sorted(found)


# -- presentation ------------------------------------------------------------

STATE_STYLE = {"finished": "green", "running": "cyan", "interrupted": "yellow", "failed": "red", "refused": "red"}


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def term_columns(records: Iterable[RunRecord]) -> list[str]:
    """Every term any run logged, in first-seen order (runs without a term show '–')."""
    return list(dict.fromkeys(k for r in records for k in r.final))


def eval_columns(records: Iterable[RunRecord]) -> list[str]:
    return list(dict.fromkeys(k for r in records for k in r.eval))


def state_text(record: RunRecord, width: int = 60) -> str:
    style = STATE_STYLE.get(record.state, "")
    text = f"[{style}]{record.state}[/]" if style else record.state
    if record.state in ("failed", "interrupted", "refused") and record.reason:
        reason = record.reason.splitlines()[0]
        text += f": {reason[:width]}{'…' if len(reason) > width else ''}"
    return text


def runs_table(records: Sequence[RunRecord], title: str = "runs") -> Table:
    terms, evals = term_columns(records), eval_columns(records)
    table = Table(title=title)
    for column in ("run", "recipe", "changed", "steps"):
        table.add_column(column, overflow="fold")
    for term in terms:
        table.add_column(term, justify="right")
    for key in evals:
        table.add_column(f"eval {key}", justify="right")
    table.add_column("status", overflow="fold")
    for r in records:
        table.add_row(r.name, r.recipe, r.changes or "–", f"{r.step}/{r.iterations or '?'}",
                      *[fmt(r.final.get(t)) for t in terms], *[fmt(r.eval.get(k)) for k in evals], state_text(r))
    return table


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config → ``{"losses.style.weight": 0.3, …}``; lists stay values."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data} if prefix else {}


MISSING = object()


def config_diff(configs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dotted keys whose values differ between configs (absent keys count as different)."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return {k: [f.get(k, MISSING) for f in flat] for k in keys
            if len({json.dumps(f.get(k, "<absent>"), sort_keys=True, default=str) for f in flat}) > 1}


def _value_text(value: Any) -> str:
    if value is MISSING:
        return "[dim](absent)[/]"
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def compare_tables(records: Sequence[RunRecord]) -> tuple[Table, Table]:
    """(config differences, final metrics) with one column per run."""
    diff = config_diff([r.config for r in records])
    config_table = Table(title="config differences" if diff else "config differences (none: identical configs)")
    config_table.add_column("key")
    for r in records:
        config_table.add_column(r.name, overflow="fold")
    for key, values in diff.items():
        config_table.add_row(key, *[_value_text(v) for v in values])

    metrics = Table(title="final metrics (unweighted terms at the last logged step)")
    metrics.add_column("")
    for r in records:
        metrics.add_column(r.name, justify="right", overflow="fold")
    metrics.add_row("status", *[state_text(r, 40) for r in records])
    metrics.add_row("steps", *[f"{r.step}/{r.iterations or '?'}" for r in records])
    metrics.add_section()
    for term in term_columns(records):
        metrics.add_row(term, *[fmt(r.final.get(term)) for r in records])
    evals = eval_columns(records)
    if evals:
        metrics.add_section()
        for key in evals:
            metrics.add_row(f"eval {key}", *[fmt(r.eval.get(key)) for r in records])
    return config_table, metrics
