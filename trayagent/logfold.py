"""Folding lines that keep coming back, as syslog's "message repeated N times" does, but for lines
that differ only in what changes from one repeat to the next (a file's name, an address, a timing).

Why: while storage is down every retry cycle says the same thing again, each time about another
file. The log file keeps the first line of each kind in full, then the latest one with how many
there were. Pure logic, no logging: ``logs.py`` decides which records may be folded and writes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

REPEAT_WINDOW = 60.0  # seconds: a line that keeps coming back is written once per this, with its count
REPEAT_KEYS = 1000    # kinds of line followed at once; beyond, new kinds are written as they come

T = TypeVar("T")

_QUOTED = re.compile(r'"[^"\n]*"')  # Go quotes URLs and names in its errors: Put "http://h/d/f.bin"
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\[[0-9A-Fa-f:]+\](?::\d+)?")
_DURATION = r"\d+(?:\.\d+)?(?:ns|us|µs|ms|[hms])"
_MEASURE = re.compile(  # timings, counters and attempt numbers; other numbers (403, 507, errno) stay
    rf"(?<![\w.])(?:{_DURATION})+(?!\w)|(?<![\w.])\d+(?:\.\d+)? s\b|\b\d+\.\d+\b|\b\d+/\d+\b"
    r"|(?<=attempt )\d+", re.IGNORECASE)


def repeat_key(text: str, subject: bool = True) -> str:
    """What two lines share when they say the same thing: the text without its subject (the part
    before the first ": ", which names the file in rclone's "path: message" and trayagent's
    "relpath: error"), quoted names and URLs, addresses and ports, timings, counters and attempt
    numbers. Errors that differ otherwise (another status code, another cause, an unquoted local
    path) stay apart."""
    if subject:
        _, sep, rest = text.partition(": ")
        text = rest if sep else text
    return _MEASURE.sub("#", _ADDRESS.sub("<address>", _QUOTED.sub('"…"', text)))


@dataclass(frozen=True)
class Held(Generic[T]):
    """Repeats held back in one window: the latest (written in full), how many, since when."""

    last: T
    count: int
    since: float


@dataclass
class _Window(Generic[T]):
    end: float
    count: int = 0
    last: T | None = None
    since: float = 0.0


class RepeatCollapser(Generic[T]):
    """Folds lines that keep coming back. The first of a kind passes; the same kind within
    ``window`` seconds is counted instead (``offer`` says which); ``due`` gives the counts of
    windows that have ended, ``drain`` all of them (at the end). A kind that keeps coming gets
    one count per window; one that stopped is forgotten, and its next occurrence passes again.
    Not thread-safe: its caller serialises (the log pump's one thread, a handler's lock)."""

    def __init__(self, window: float = REPEAT_WINDOW, max_keys: int = REPEAT_KEYS) -> None:
        self.window = window
        self.max_keys = max_keys
        self._open: dict[str, _Window[T]] = {}  # by end of window: one (re)opened goes last

    def offer(self, key: str, item: T, now: float) -> bool:
        """True: write ``item`` now. False: it was counted, its count comes from ``due``."""
        seen = self._open.get(key)
        if seen is None or (not seen.count and now >= seen.end):  # a new kind, or a new episode
            if seen is not None or len(self._open) < self.max_keys:
                self._open.pop(key, None)
                self._open[key] = _Window(now + self.window)
            return True
        if not seen.count:
            seen.since = now
        seen.count += 1
        seen.last = item
        return False

    def due(self, now: float) -> list[Held[T]]:
        """The counts of windows that ended by ``now``, oldest first."""
        out: list[Held[T]] = []
        while self._open:
            key, seen = next(iter(self._open.items()))
            if seen.end > now:
                break
            del self._open[key]
            if seen.count and seen.last is not None:
                out.append(Held(seen.last, seen.count, seen.since))
                self._open[key] = _Window(now + self.window)  # still coming: the next count a window on
        return out

    def drain(self) -> list[Held[T]]:
        """Every count still held (the log ends): nothing counted is lost."""
        out = [Held(s.last, s.count, s.since) for s in self._open.values() if s.count and s.last is not None]
        self._open.clear()
        return out


def more_like_it(text: str, count: int, since: float) -> str:
    """``text`` (the latest of ``count`` held-back lines) saying how many there were and since when;
    the note ends the first line, before a hint on the next."""
    stamp = time.strftime("%H:%M:%S", time.localtime(since))
    note = f" (and {count - 1} more like it since {stamp})" if count > 1 else f" (once more, at {stamp})"
    head, newline, tail = text.partition("\n")
    return head + note + newline + tail
