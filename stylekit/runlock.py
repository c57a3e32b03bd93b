"""One writer per run folder: an OS lock on a file, plus a record of who holds it.

Where the OS has ``fcntl.flock`` (Linux, macOS) the lock is the kernel's: it is released when the
holding process ends however it ends (``kill -9`` included), so a lock can never outlive its writer.
The file also records the holder's pid, host and process start time, for the refusal message and,
where there is no flock (Windows) or the file system refuses it, for the fallback: an exclusively
created file that counts as stale once its pid is gone on this host (or now belongs to a process
that started later, i.e. a reused pid).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import StylekitError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class RunLockedError(StylekitError):
    """Another process is writing the run folder."""


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, Linux ``/proc/PID/stat`` field 22); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])  # after "pid (comm)": field 3 is index 0
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock."""

    pid: int
    host: str
    started: str  # ISO time the lock was taken
    command: str = ""
    process_start: int | None = None  # see process_start_ticks

    @classmethod
    def me(cls) -> Holder:
        pid = os.getpid()
        command = " ".join(sys.argv)
        return cls(pid, socket.gethostname(), datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   command[:300], process_start_ticks(pid))

    def alive(self) -> bool | None:
        """Is the holder still running? None: it runs on another host, so this one cannot tell."""
        if self.host != socket.gethostname():
            return None
        if not process_alive(self.pid):
            return False
        now = process_start_ticks(self.pid)
        return self.process_start is None or now is None or now == self.process_start

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on host {self.host}"
        command = f" ({self.command})" if self.command else ""
        return f"process {self.pid}{where}, started {self.started}{command}"


#: never follow a link at the lock's path: a run folder may come from anywhere, and the lock is written to
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StylekitError(f"{path} is a symbolic link; the writer lock must be a plain file. "
                                "Remove it (nothing is lost: it only records who is writing).") from None
        raise


def read_holder(path: Path) -> Holder | None:
    try:
        fd = _open(Path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, StylekitError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo or device would block or never end
            return None
        data = json.loads(os.read(fd, 65536).decode("utf-8", "replace"))
        return Holder(**{k: data.get(k) for k in ("pid", "host", "started", "command", "process_start")})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    finally:
        os.close(fd)


class FileLock:
    """An exclusive lock on ``path``; ``acquire`` raises :class:`RunLockedError` naming the holder.

    ``describe`` turns the holder into the refusal message (what the caller was trying to lock).
    """

    def __init__(self, path: str | Path, refusal: str = "{path} is locked by {holder}."):
        self.path = Path(path)
        self.refusal = refusal
        self._fd: int | None = None
        self._flock = False
        #: the holder found in the file when the lock was taken: a writer that ended without releasing
        self.stale: Holder | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _refuse(self, holder: Holder | None) -> RunLockedError:
        text = holder.describe() if holder else "another process (it has not recorded its pid yet)"
        return RunLockedError(self.refusal.format(path=self.path.parent, holder=text,
                                                  pid=holder.pid if holder else "?"))

    def acquire(self, attempts: int = 5, wait_s: float = 0.1) -> FileLock:
        if self.held:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            fd = _open(self.path, os.O_RDWR | os.O_CREAT)
            for attempt in range(attempts):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # held (or briefly probed by `writer`): look again shortly
                    if attempt == attempts - 1:
                        os.close(fd)
                        raise self._refuse(read_holder(self.path)) from None
                    time.sleep(wait_s)
                    continue
                except OSError as exc:  # e.g. ENOLCK on a file system without flock: use the pid file
                    os.close(fd)
                    if exc.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    break
                self.stale = read_holder(self.path)  # still recorded: its writer ended without releasing
                self._fd, self._flock = fd, True
                self._write_holder()
                return self
        return self._acquire_pid_file(attempts, wait_s)

    def _acquire_pid_file(self, attempts: int, wait_s: float) -> FileLock:
        for attempt in range(attempts + 1):
            try:
                fd = _open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                holder = read_holder(self.path)
                # gone, or still no pid recorded after all the waiting (its creator died at once): take it over
                if (holder.alive() is False) if holder is not None else attempt >= attempts - 1:
                    self.stale = holder
                    self.path.unlink(missing_ok=True)
                    continue
                if attempt >= attempts - 1:
                    raise self._refuse(holder) from None
                time.sleep(wait_s)
                continue
            self._fd, self._flock = fd, False
            self._write_holder()
            return self
        raise self._refuse(read_holder(self.path))

    def _write_holder(self) -> None:
        assert self._fd is not None
        data = (json.dumps(asdict(Holder.me())) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._flock:  # the file stays (removing a flocked file races with the next opener)
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_holder(path: str | Path) -> Holder | None:
    """Who holds the lock on ``path`` now (None: nobody), without taking it."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    if fcntl is not None:
        try:
            fd = _open(path, os.O_RDONLY)
        except (OSError, StylekitError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(path) or Holder(0, socket.gethostname(), "?")
        except OSError:
            pass  # no flock here: judge by the recorded pid below
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
    holder = read_holder(path)
    return holder if holder is not None and holder.alive() is not False else None
