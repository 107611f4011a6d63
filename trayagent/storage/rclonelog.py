"""rclone's log, taken into trayagent's: every line rclone prints goes to the log file (under
``trayagent.rclone.process``) with trayagent's prefix, and its "Copied" lines are counted.

Why lines are grouped: rclone prints one "Copied" line per file. Logged one record each, a first
upload of 20,000 small files spent 1.2 s of the GIL writing them, beside an engine that is the
bottleneck on a local disk. Lines that are already waiting in the pipe when it is read go out as one
record (one format, one write), and the log file shows each with its own prefix as before (``logs.py``
expands such a record). While lines come in bursts the pipe is read every 10 ms, which gathers a few
hundred per record; a line on its own (sync mode between files) is logged at once.

Why the other lines go in records of their own, marked ``COLLAPSE``: while storage is down rclone
says the same thing again for each file and each call (its echo of every failed read-back,
"Failed to copy: ... connection refused" for each file in flight), differing only in the file's
name, the address and the timings. The log file folds such lines (``logs.py``: the first of a kind in
full, then the latest with a count, "... (and 499 more like it since 12:00:01)"). It is done there,
not here, because only the log file's close is sure to come: `trayagent upload` ends with
``logging.shutdown`` and ``os._exit`` without waiting for rclone's stderr to close, and a count held
here was lost. The per-file "Copied" lines are never marked: each is a file sent.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable

from ..logs import COLLAPSE

rclone_log = logging.getLogger("trayagent.rclone.process")

GROUP_MAX = 1000  # lines per record at most
# Read again this long after a read that brought several lines: at rclone's fastest (12,000 files a
# second to a local disk) ~10 kB gather meanwhile, well within a pipe's 64 kB, so rclone never waits.
BURST_PAUSE = 0.01
_COPIED = re.compile(r": (?:Multi-thread )?Copied \(")
_LEVEL = re.compile(r"^\S+ \S+ (ERROR|NOTICE|INFO|DEBUG|WARNING|CRITICAL)\s*: ?(.*)$")
# rclone's echo of an rc call that failed: the caller gets the same error as RcError and reports it
# in its own words, so the echo goes to the log file only, not to the console as well.
_RC_ECHO = re.compile(r'^rc: "[^"]+": error: ')
_PYLEVEL = {"ERROR": logging.ERROR, "CRITICAL": logging.ERROR, "WARNING": logging.WARNING,
            "NOTICE": logging.INFO, "DEBUG": logging.DEBUG}


def parse(line: str) -> tuple[int, str]:
    """(Python log level, text) of one line of rclone's log."""
    line = line.rstrip()
    m = _LEVEL.match(line)
    level, text = (m.group(1), m.group(2)) if m else ("INFO", line)
    pylevel = _PYLEVEL.get(level, logging.INFO)
    if _RC_ECHO.match(text):
        pylevel = min(pylevel, logging.INFO)
    return pylevel, text


class LineReader:
    """rclone's stderr, read straight from the pipe in whole chunks: everything that is waiting (up to
    64 KiB) comes at once, so lines that arrived together are handled together. Works the same on
    Windows, where ``select`` does not take pipes."""

    MAX_LINE = 1 << 20  # a "line" longer than this (no newline in sight) is taken as it is

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._rest = b""

    def lines(self) -> list[str] | None:
        """The complete lines that have arrived (blocks until there is one); None once rclone's
        stderr is closed."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                rest, self._rest = self._rest, b""
                return [rest.decode("utf-8", "replace")] if rest else None
            head, newline, self._rest = (self._rest + data).rpartition(b"\n")
            if len(self._rest) > self.MAX_LINE:
                head, newline, self._rest = head + newline + self._rest, b"\n", b""
            if newline:
                return head.decode("utf-8", "replace").split("\n")


class LogPump:
    """Follows one rclone's stderr until it closes; counts the "Copied" lines for ``wait_copies``."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self.redact = redact
        self._copied = 0
        self._cond = threading.Condition()

    def copied(self) -> int:
        with self._cond:
            return self._copied

    def wait_copies(self, base: int, expect: int, timeout: float) -> bool:
        """True once ``expect`` more files than ``base`` were logged as copied."""
        with self._cond:
            return self._cond.wait_for(lambda: self._copied - base >= expect, timeout)

    def run(self, reader: LineReader, first: list[str]) -> None:
        """Log rclone's lines until its stderr closes; ``first``: lines read before (the start-up's)."""
        chunk: list[str] | None = first
        while chunk is not None:
            self._take(chunk)
            if len(chunk) > 1:  # a burst (a copy under way): let more lines gather, fewer records
                time.sleep(BURST_PAUSE)
            chunk = reader.lines()

    def _take(self, chunk: list[str]) -> None:
        """Consecutive lines of one level go out as one record, "Copied" lines and the others
        apart (only the others may be folded); the copies are counted first."""
        group: list[str] = []
        group_kind = (logging.INFO, True)
        copied = 0
        for line in chunk:
            level, text = parse(line)
            copy = bool(_COPIED.search(text))
            copied += copy
            if not text or not rclone_log.isEnabledFor(level):
                continue
            if group and ((level, copy) != group_kind or len(group) >= GROUP_MAX):
                self._emit(group_kind, group)
                group = []
            group.append(text)
            group_kind = (level, copy)
        if copied:
            with self._cond:
                self._copied += copied
                self._cond.notify_all()
        if group:
            self._emit(group_kind, group)

    def _emit(self, kind: tuple[int, bool], lines: list[str]) -> None:
        # a record made here, not by Logger.log: that one looks up the calling frame each time;
        # ``lines``: logs.py gives each line its own prefix; ``kind``: (level, "Copied" lines)
        level, copies = kind
        text = self.redact("\n".join(lines))
        rclone_log.handle(rclone_log.makeRecord(rclone_log.name, level, __file__, 0, "%s", (text,), None,
                                                "rclone", {"lines": len(lines), COLLAPSE: not copies}))
