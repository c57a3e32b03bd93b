"""A run folder: the one place that knows its layout, records, status, writer lock and checkpoints.

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
inside it, and nothing in it is imported as code unless the user says so (:mod:`.trust`).
Reading never imports the trainer, so listings work on runs copied from elsewhere.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
import re
import socket
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from ..config import upgrade_keys
from ..errors import StylekitError
from ..runlock import FileLock, Holder, RunLockedError, lock_holder, process_alive
from ..yamlio import safe_yaml_load

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


def safe_name(text: str, limit: int = 120) -> str:
    """A folder name from free text: anything but word characters and ``.=,+-`` becomes ``_``."""
    return re.sub(r"[^\w.=,+\-]", "_", text)[:limit]


#: Recipe keys (dotted prefixes) whose value never changes the trained network: logging cadence and loggers,
def effective_state(status: dict[str, Any]) -> tuple[str, str]:
    """(state, reason); a 'running' run whose process is gone on this host reads as interrupted."""
    state, reason = str(status.get("state", "unknown")), str(status.get("reason", ""))
    if state == "running":
        pid, host = status.get("pid"), status.get("host")
        if isinstance(pid, int) and (host in (None, socket.gethostname())) and not process_alive(pid):
            return "interrupted", f"process {pid} ended without a final status (killed?) at step {status.get('step', '?')}"
    return state, reason



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
    def containing(cls, path: str | Path, *, with_records: bool = True) -> RunDir | None:
        """The run a checkpoint folder (or a file in one) belongs to, if it lies in a run's ``checkpoints/``
        (``with_records``: and the run wrote its records beside them)."""
        path = Path(path)
        ckpt = path.parent if path.is_file() else path
        if ckpt.parent.name != CHECKPOINTS_DIR or cls.step_of(ckpt) is None:
            return None
        run = cls(ckpt.parent.parent)
        return run if run.holds_run() or not with_records else None

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
        """Write a new run's ``config.yaml`` and ``run.json`` (``info``, with the command and the time added)."""
        atomic_write_text(self.config, config_text)
        record = {"name": self.name, "recipe": recipe_name, "created": _now(), "command": sys.argv, **info}
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

    def record_resume(self, step: int, config_text: str, changes: dict[str, Any]) -> None:
        """Note a resume in ``run.json`` and, when it changes the recipe, rewrite ``config.yaml``.

        ``changes``: the command line's ``overrides``, ``without`` and ``only``, and ``changed``, the dotted keys
        whose value the resume changes (:func:`stylekit.session.resume_changes`), which ``stylekit runs`` shows.
        """
        info = self.read_info()
        entry = {"step": step, "time": _now(), "command": sys.argv,
                 **{k: list(v) for k, v in changes.items() if k in ("overrides", "without", "only") and v},
                 "changed": list(changes.get("changed") or [])}
        info.setdefault("resumes", []).append(entry)
        atomic_write_text(self.info, json.dumps(info, indent=2) + "\n")
        if entry["changed"]:
            atomic_write_text(self.config, config_text)

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

    def metric_rows(self) -> list[dict[str, Any]]:
        """Every complete line of ``metrics.jsonl``, oldest first."""
        path = self.inside(self.metrics)
        rows = []
        for line in path.read_text().splitlines() if path.is_file() else []:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
        return rows

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
    @contextmanager
    def claim(cls, output_dir: str | Path, name: str) -> Iterator[RunDir]:
        """A fresh run folder (:meth:`create`), locked while the block runs; when it ends, the lock is released and
        a folder no run was written in (its checks failed, or it was stopped while building) is removed."""
        run = cls.create(output_dir, name)
        try:
            yield run
        finally:
            run.release()
            if run.path.is_dir() and run.is_empty() and run.writer() is None:
                run.lock_file.unlink(missing_ok=True)
                try:
                    run.path.rmdir()
                except OSError:  # another process wrote into it meanwhile
                    pass

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
