"""A one-line terminal progress bar: files, bytes, rate and ETA, redrawn in place.

Only drawn when the stream is a terminal, so logs and pipes stay clean.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, TextIO

from ..formats import human_bytes

if TYPE_CHECKING:
    from ..pipeline.progress import Progress


def human_seconds(s: float | None) -> str:
    if s is None:
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def render(p: Progress, width: int) -> str:
    """The bar for one snapshot, fitted to ``width`` columns."""
    fraction = p.bytes_done / p.bytes_total if p.bytes_total else (
        p.files_done / p.files_total if p.files_total else 0.0)
    text = (f" {p.files_done}/{p.files_total} files  {human_bytes(p.bytes_done)}/{human_bytes(p.bytes_total)}"
            f"  {human_bytes(p.rate)}/s  ETA {human_seconds(p.eta)}")
    if p.counts.get("failed"):
        text += f"  {p.counts['failed']} failed"
    if p.waiting:
        text += f"  waiting: {p.waiting}"
    bar_width = max(10, min(30, width - len(text) - 3))
    filled = int(bar_width * min(fraction, 1.0))
    line = f"[{'#' * filled}{'.' * (bar_width - filled)}]{text}"
    return line[: width - 1]


class ProgressBar:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = 0.0

    @classmethod
    def for_stream(cls, stream: TextIO, enabled: bool = True) -> ProgressBar | None:
        return cls(stream) if enabled and stream.isatty() else None

    def update(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 0.2 and p.files_done < p.files_total:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + render(p, width).ljust(width - 1))
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
