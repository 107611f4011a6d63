"""One worker per queue: an OS file lock, released by the kernel when the holder dies.

Why a lock and not a pid file: a process killed with SIGKILL cannot clean up, and a stale pid file
would block every later run. ``flock``/``LockFileEx`` locks vanish with their process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Self

from ..errors import TrayagentError


class Busy(TrayagentError):
    """Another trayagent process holds the queue."""

    exit_code = 2


class ProcessLock:
    def __init__(self, path: Path, what: str = "this queue") -> None:
        """``what`` names what the lock guards in the message a refused process prints."""
        self.path = path
        self.what = what
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open (locked) until release()
        try:
            _lock(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise Busy(f"another trayagent process (pid {holder}) is working on {self.what}",
                       "Wait for it to finish, or stop it; its work is not lost.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fh: IO[str]) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
else:
    import fcntl

    def _lock(fh: IO[str]) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
