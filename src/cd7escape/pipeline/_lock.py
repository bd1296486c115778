"""One run at a time per patient folder: an exclusive lock file, safe on shared storage.

``<outdir>/<patient>/.cd7escape.lock`` holds who runs the patient (host, pid, process start, time,
command). It is held with ``flock`` for the life of the process, so the kernel (or the NFSv4 server)
frees it when the process dies, however it dies; the file's content names the holder in the message a
second run prints (exit 2). Where the file system refuses ``flock`` (some Lustre/NFS mounts without a
lock manager), the content decides as well: a lock written on this host by a process that no longer
exists (or whose pid now belongs to another process) is stale and taken over with a warning. This host
cannot see another host's processes, so the holder touches the file every :data:`HEARTBEAT` seconds and a
lock from another host is stale once it has not been touched for :data:`STALE_AFTER` seconds (a run
killed on one cluster node does not block its resubmission on another for long).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InputError, Problem
from .._logging import logger

LOCK_NAME = ".cd7escape.lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
#: Seconds between two touches of a held lock file (its modification time says the holder is alive).
HEARTBEAT = 30.0
#: A lock from another host untouched for this long is stale (ten heartbeats missed).
STALE_AFTER = 300.0


@dataclass
class PatientLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block) frees it."""

    path: Path
    fd: int | None
    info: dict[str, Any]

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="cd7escape-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one locks a file about to vanish)."""
        self._stop.set()
        if self.fd is None and not self.path.exists():
            return
        with contextlib.suppress(OSError):
            if _owner(_read_info(self.path)) == _owner(self.info):
                self.path.unlink()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def __enter__(self) -> PatientLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class LockHeld(Exception):
    """The patient folder is being written by another live run."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        super().__init__(describe_holder(path, info))
        self.path = path
        self.info = info

    def problem(self, patient: str) -> Problem:
        return Problem(str(self), file=str(self.path), sample=None, field=f"patient {patient}")


def acquire(pdir: Path) -> PatientLock:
    """Lock the patient folder ``pdir`` (created when absent) for this process.

    Raises
    ------
    LockHeld
        Another live process holds it.
    """
    pdir.mkdir(parents=True, exist_ok=True)
    path = pdir / LOCK_NAME
    mine = _my_info()
    for _ in range(50):  # retries only when a releasing run removed the file under us
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        locked = True
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(path, _read_info(path)) from None
        except OSError as err:
            if err.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            locked = False  # no lock manager: the content decides
        except ImportError:  # not POSIX
            locked = False
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file between our open and our lock: start again
            os.close(fd)
            continue
        previous = _read_info(path)
        if previous and _owner(previous) != _owner(mine):
            alive = _alive(previous)
            if alive is None:  # another host: alive while it keeps touching the file
                alive = _age(path) < STALE_AFTER
            if alive:  # the holder locks without flock (no lock manager), or on another host
                os.close(fd)
                raise LockHeld(path, previous)
            logger.warning(
                "taking over the stale lock %s of %s (%s)",
                path,
                _who(previous),
                "the process no longer runs"
                if previous.get("host") == socket.gethostname()
                else f"untouched for {_age(path):.0f} s",
            )
        _write_info(fd, mine)
        return PatientLock(path, fd if locked else _close(fd), mine)
    raise LockHeld(path, _read_info(path))


def acquire_all(out: Path, patients: list[str]) -> list[PatientLock]:
    """Lock every patient folder of a run before it starts; none when one of them is held.

    Raises
    ------
    InputError
        Naming each held patient folder, its holder and what to do (exit 2).
    """
    held: list[PatientLock] = []
    created: list[Path] = []
    problems: list[Problem] = []
    for pid in patients:
        pdir = out / pid
        if not pdir.exists():
            created.append(pdir)
        try:
            held.append(acquire(pdir))
        except LockHeld as err:
            problems.append(err.problem(pid))
    if problems:
        for lock in held:
            lock.release()
        for pdir in created:  # a refused run leaves no folder behind
            with contextlib.suppress(OSError):
                pdir.rmdir()
        raise InputError(problems)
    return held


def _age(path: Path) -> float:
    """Seconds since the lock file was last touched (0 when it cannot be read)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


def describe_holder(path: Path, info: dict[str, Any]) -> str:
    """The message of a run refused because ``path`` is held."""
    if not info:
        return (
            "another cd7escape run is writing this patient's results (its lock file is being "
            "written); wait for it to finish, or run with another --outdir"
        )
    where = _who(info)
    text = f"another cd7escape run ({where}) is writing this patient's results"
    if info.get("host") not in (None, socket.gethostname()):
        text += (
            f"; wait for it to finish, or run with another --outdir (if no run is active on "
            f"{info.get('host')}, the lock is taken over {STALE_AFTER:.0f} s after its last "
            f"heartbeat, or delete {path})"
        )
    else:
        text += "; wait for it to finish, or run with another --outdir"
    return text


def _who(info: dict[str, Any]) -> str:
    started = info.get("started")
    return f"pid {info.get('pid')} on host {info.get('host')}" + (
        f", started {started}" if started else ""
    )


def _my_info() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }


def _owner(info: dict[str, Any]) -> tuple[Any, ...]:
    return (info.get("host"), info.get("pid"), info.get("process_start"))


def _process_start(pid: int) -> int | None:
    """Start of a process in clock ticks since boot (Linux), telling a reused pid from the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _alive(info: dict[str, Any]) -> bool | None:
    """Whether the holder named in ``info`` still runs: None when this host cannot tell (another host)."""
    if info.get("host") != socket.gethostname():
        return None
    try:
        pid = int(info.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return False
    start = info.get("process_start")
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    return True


def _read_info(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        info = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _write_info(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info, indent=2) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    with contextlib.suppress(OSError):
        os.fsync(fd)


def _close(fd: int) -> None:
    os.close(fd)
