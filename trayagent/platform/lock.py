"""One worker per queue or dataset: an OS file lock, released by the system when the holder dies.

Why a lock and not a pid file: a process killed with SIGKILL cannot clean up, and a stale pid file
would block every later run. The lock is filelock's (``flock`` on POSIX, ``LockFileEx``-style
``msvcrt`` locking on Windows), so no platform code lives here. The holder's pid, for the message a
refused process prints, sits in a file of its own beside the lock: on Windows a locked byte range cannot
be read by another process, so the pid must not live in the locked file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Self

from filelock import FileLock, Timeout

from ..errors import TrayagentError


class Busy(TrayagentError):
    """Another trayagent process holds the queue."""

    exit_code = 2


class ProcessLock:
    def __init__(self, path: Path, what: str = "this queue") -> None:
        """``what`` names what the lock guards in the message a refused process prints."""
        self.path = path
        self.what = what
        self.owner_file = path.with_name(path.name + ".pid")
        # Not thread-local and not re-entrant across objects: a second ProcessLock on the same file in
        # this process is refused like another process would be (two uploads of one dataset in one agent).
        self._lock = FileLock(str(path), timeout=0, thread_local=False)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock.is_locked:
            return
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise Busy(f"another trayagent process (pid {self._holder()}) is working on {self.what}",
                       "Wait for it to finish, or stop it; its work is not lost.") from None
        with contextlib.suppress(OSError):  # the pid is for messages only
            self.owner_file.write_text(str(os.getpid()), encoding="utf-8")

    def _holder(self) -> str:
        try:
            return self.owner_file.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
