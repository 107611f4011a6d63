"""Completion detection: when has the acquisition system finished writing a file?

Two signals. A close-after-write event (Linux inotify IN_CLOSE_WRITE) says the writer let go: the
file is ready at once. Everywhere else, and as the fallback, a file is ready when its size and
mtime have not moved for the quiet period and no writer holds it open (Windows sharing check).
A file written again after its close starts over, so a reopened-and-appended file is taken in
its final version. The settler holds only files in flight, never the whole tree.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..platform.inuse import in_use_by_writer


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    since: float  # when size/mtime were last seen to change
    closed: bool
    needs_close: bool  # seen through close-capable events: wait for the close, not for quiet


class Settler:
    """Thread-safe: watcher threads report, one consumer takes what is ready."""

    def __init__(self, quiet_seconds: float, clock: Callable[[], float] = time.monotonic,
                 in_use: Callable[[Path], bool] = in_use_by_writer, open_timeout: float = 300.0) -> None:
        self.quiet = quiet_seconds
        # A writer holding a file open but silent this long (a log kept open all run) is taken anyway;
        # if it writes again, the new version follows.
        self.open_timeout = max(open_timeout, quiet_seconds)
        self.clock = clock
        self.in_use = in_use
        self._files: dict[Path, _Candidate] = {}
        self._cond = threading.Condition()
        self._nudged = False  # a nudge not yet seen by ``wait`` (one sent just before it is not lost)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._files)

    def touch(self, path: Path, wait_for_close: bool = False) -> None:
        """Created or modified: (re)start its quiet period. ``wait_for_close``: the event source
        also reports closes (Linux inotify), so the file is complete only when closed."""
        self._note(path, closed=False, needs_close=wait_for_close)

    def found(self, path: Path) -> None:
        """Seen by a scan (start, rescan, a folder that appeared): judged by the quiet period,
        since the events that would announce its close may have been missed."""
        self._note(path, closed=False, scanned=True)

    def closed(self, path: Path) -> None:
        """The writer closed it (or renamed it into place): ready unless written again."""
        self._note(path, closed=True)

    def forget(self, path: Path) -> None:
        with self._cond:
            if self._files.pop(path, None) is not None:
                self._cond.notify_all()  # the waiting count changed

    def _note(self, path: Path, closed: bool, needs_close: bool = False, scanned: bool = False) -> None:
        st = _stat(path)
        with self._cond:
            if st is None:
                self._files.pop(path, None)
                return
            old = self._files.get(path)
            now = self.clock()
            if old and (old.size, old.mtime_ns) == (st.st_size, st.st_mtime_ns):
                old.closed = old.closed or closed
                # a live write upgrades (its close will come); a scan downgrades (events may be lost)
                old.needs_close = needs_close if scanned else (old.needs_close or needs_close)
            else:
                self._files[path] = _Candidate(st.st_size, st.st_mtime_ns, now, closed, needs_close)
            self._cond.notify_all()

    def nudge(self) -> None:
        """Wake a consumer blocked in ``wait``, or make its next ``wait`` return at once (used when
        stopping: the consumer may be between its check of the stop flag and its wait)."""
        with self._cond:
            self._nudged = True
            self._cond.notify_all()

    def take_ready(self) -> list[tuple[Path, os.stat_result]]:
        """Files whose writer is done, removed from the waiting set, with the stat they settled at."""
        now = self.clock()
        with self._cond:
            items = list(self._files.items())
        ready = []
        for path, c in items:
            st = _stat(path)
            with self._cond:
                if self._files.get(path) is not c:
                    continue
                if st is None:
                    del self._files[path]
                elif (st.st_size, st.st_mtime_ns) != (c.size, c.mtime_ns):
                    c.size, c.mtime_ns, c.since, c.closed = st.st_size, st.st_mtime_ns, now, False
                elif c.closed or (now - c.since >= self._quiet_for(c) and not self.in_use(path)):
                    del self._files[path]
                    ready.append((path, st))
        return ready

    def _quiet_for(self, c: _Candidate) -> float:
        return self.open_timeout if c.needs_close else self.quiet

    def wait(self, timeout: float | None = None) -> None:
        """Sleep until something may be ready: a report arrives, or the earliest quiet period ends.
        With no file in flight, that is the next report (or ``nudge``, or ``timeout`` if given):
        an idle session does not wake at all."""
        with self._cond:
            if self._nudged or any(c.closed for c in self._files.values()):
                self._nudged = False
                return
            if self._files:
                earliest = min(c.since + self._quiet_for(c) for c in self._files.values())
                left = earliest - self.clock()
                left = left if left > 0 else 0.5  # past due: a writer holds it
                timeout = left if timeout is None else min(timeout, left)
            self._cond.wait(timeout)
            self._nudged = False


def _stat(path: Path) -> os.stat_result | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None
