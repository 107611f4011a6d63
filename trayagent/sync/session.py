"""Sync mode: while the experiment runs, every file the acquisition system finishes goes up.

A session = one dataset + its folders. It scans once at start (catching up on whatever happened
while it was down), then watches; completed files go into the queue and wake the engine. The
session's definition lives in the queue database, so a restarted agent restores it; a periodic
safety rescan catches anything the events missed. Finalizing stops the watching, rescans one last
time and lets the engine finish the dataset (manifest, catalogue completion).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..pipeline.scan import DEFAULT_IGNORES, Filters, Source, batched, scan
from ..queue import Dataset, NewFile, Queue
from .settle import Settler
from .watcher import FolderWatcher

log = logging.getLogger(__name__)

STATUS_INTERVAL = 1.0   # the waiting count for `trayagent status` is written at most this often
RESCAN_DUTY = 0.0005    # the safety rescan's share of the time, at most (a big tree is rescanned less often)
FOLDER_CHECK = 5.0      # how often the watched folders are looked at (gone? back? observer alive?)


def sources_to_json(sources: tuple[Source, ...] | list[Source]) -> list[dict[str, str | None]]:
    return [{"root": str(s.root), "prefix": s.prefix, "only": s.only} for s in sources]


def sources_from_json(items: list[dict[str, str | None]]) -> list[Source]:
    return [Source(Path(str(i["root"])), str(i["prefix"] or ""), i.get("only")) for i in items]


class SyncSession:
    """Watches one dataset's folders and feeds completed files to the queue."""

    def __init__(self, queue: Queue, dataset: Dataset, sources: list[Source], filters: Filters, *,
                 quiet_seconds: float, polling: bool, rescan_seconds: float,
                 wake: Callable[[], None], on_trouble: Callable[[str], None] | None = None) -> None:
        self.queue = queue
        self.dataset = dataset
        self.sources = sources
        self.filters = Filters(filters.include, filters.exclude + DEFAULT_IGNORES)
        self.rescan_seconds = rescan_seconds
        self.wake = wake
        self.on_trouble = on_trouble or (lambda message: None)
        self.settler = Settler(quiet_seconds)
        self._stop = threading.Event()
        self._rescan_requested = threading.Event()
        self._attention = threading.Event()  # wakes the housekeeping: stop, a rescan asked for, a watch limit
        self.watchers = [FolderWatcher(s.root, self.settler, self._accepts(s), polling=polling,
                                       on_folder=self._folder_appeared, on_trouble=self._trouble,
                                       on_limit=self._attention.set)
                         for s in sources if s.only is None]
        self._threads: list[threading.Thread] = []
        self.warning: str | None = None
        self._skipped: frozenset[str] = frozenset()  # what the last rescan skipped, told once
        self.finalizing = False
        self.gone: set[Path] = set()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Watch first, then scan: a file written during the scan is seen by one or the other."""
        for w in self.watchers:
            if not w.start():
                self._folder_gone(w)
        self.rescan("start")
        self._spawn(self._settle_loop, "settle")
        self._spawn(self._housekeeping_loop, "sync-housekeeping")
        self._save_status(force=True)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=f"{name}-{self.dataset.id}", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop watching; what is queued stays queued (and is resumed next time)."""
        self._stop.set()
        self._attention.set()
        self.settler.nudge()
        for w in self.watchers:
            w.close()
        for t in self._threads:
            t.join(5)

    def finalize(self) -> None:
        """The experiment is over: stop watching, take every file as it is now, end the scan."""
        self.finalizing = True
        self.stop()
        self.rescan("finalize", settled_only=False)
        self.queue.set_dataset(self.dataset.id, scan_done=1)
        self.wake()

    # -- feeding the queue ----------------------------------------------------------------------
    def rescan(self, reason: str, settled_only: bool = True) -> int:
        """Enqueue what is new or changed. Files modified within the quiet period go to the
        settler instead (they may still be being written), unless ``settled_only`` is False."""
        started = time.monotonic()
        errors: list[str] = []
        skipped: list[str] = []
        fresh_before = time.time_ns() - int(self.settler.quiet * 1e9)
        queued = 0
        for chunk in batched(scan(self.sources, self.filters, errors, skipped), 1000):
            ready = [f for f in chunk if not settled_only or f.mtime_ns <= fresh_before]
            for f in chunk:
                if settled_only and f.mtime_ns > fresh_before:
                    self.settler.found(Path(f.src_root) / f.src_rel)
            queued += self.queue.enqueue(self.dataset.id, ready)
        if queued:
            self.wake()
        self._tell_skipped(skipped)
        log.info("%s: rescan (%s) queued %d new or changed files in %.1f s", self.dataset.name, reason,
                 queued, time.monotonic() - started)
        return queued

    def _tell_skipped(self, skipped: list[str]) -> None:
        """What is not uploaded (a FIFO, a link to a folder) becomes the session's warning, which
        `trayagent status` and the agent show; said again only when it changes."""
        if skipped and frozenset(skipped) != self._skipped:
            more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            self._trouble(f"skipped {'; '.join(skipped[:3])}{more}", rescan=False)
        self._skipped = frozenset(skipped)

    def _settle_loop(self) -> None:
        """Sleeps until a file may be complete (a report, the end of a quiet period) or the waiting
        count is due to be written: with no file in flight, until the next event."""
        while not self._stop.is_set():
            self.settler.wait(self._status_due())
            ready = self.settler.take_ready()
            if ready:
                self.queue.enqueue(self.dataset.id, [self._new_file(p, st) for p, st in ready])
                self.wake()
            self._save_status()

    def _new_file(self, path: Path, st: os.stat_result) -> NewFile:
        source = self._source_of(path)
        rel = path.relative_to(source.root).as_posix()
        relpath = f"{source.prefix}/{rel}" if source.prefix else rel
        return NewFile(str(source.root), rel, relpath, st.st_size, st.st_mtime_ns)

    def _source_of(self, path: Path) -> Source:
        return max((s for s in self.sources if s.only is None and path.is_relative_to(s.root)),
                   key=lambda s: len(s.root.parts))

    def _accepts(self, source: Source) -> Callable[[Path], bool]:
        def accept(path: Path) -> bool:
            try:
                rel = path.relative_to(source.root).as_posix()
            except ValueError:
                return False
            return self.filters.wants(rel)
        return accept

    def _folder_appeared(self, folder: Path) -> None:
        """A folder created or moved into the tree: its files may have arrived without events."""
        for source in self.sources:
            if source.only is None and folder.is_relative_to(source.root):
                sub = Source(folder, "", None)
                for f in scan([sub], Filters()):
                    path = folder / f.src_rel
                    if self._accepts(source)(path):
                        self.settler.found(path)

    # -- keeping watch --------------------------------------------------------------------------
    def _housekeeping_loop(self) -> None:
        """Looks at the folders every ``FOLDER_CHECK`` seconds (watchdog reports neither a watched
        folder renamed away nor an unmounted share), rescans when the safety rescan is due, and
        at once when asked (a warning such as an event-queue overflow, a watch limit reached)."""
        next_rescan = time.monotonic() + self.rescan_seconds
        while True:
            self._attention.wait(min(FOLDER_CHECK, max(next_rescan - time.monotonic(), 0.0)))
            self._attention.clear()
            if self._stop.is_set():
                return
            self._check_folders()
            if self._rescan_requested.is_set() or time.monotonic() >= next_rescan:
                self._rescan_requested.clear()
                began = time.monotonic()
                self.rescan("safety" if began >= next_rescan else "after a warning")
                next_rescan = time.monotonic() + self.rescan_gap(time.monotonic() - began)

    def rescan_gap(self, took: float) -> float:
        """Seconds to the next safety rescan: ``rescan_seconds``, stretched so that rescanning costs
        at most RESCAN_DUTY of the time (issue 24: idle cost must not grow with the files; a million
        files took 9 s, every 10 minutes 1.5 % of a core). What the events miss is rare (an overflow
        of the event queue, which asks for a rescan at once, and a watch limit, which polls)."""
        gap = max(self.rescan_seconds, took / RESCAN_DUTY)
        if gap > self.rescan_seconds:
            log.info("%s: the safety rescan took %.1f s; the next in %.0f min (at most %.2f %% of the time)",
                     self.dataset.name, took, gap / 60, RESCAN_DUTY * 100)
        return gap

    def _check_folders(self) -> None:
        for w in self.watchers:
            if w.fall_back_to_polling():
                self._rescan_requested.set()
            if w.root in self.gone:
                if w.start():
                    self.gone.discard(w.root)
                    self._trouble(f"watched folder {w.root} is back; catching up", rescan=True)
            elif not w.alive():
                self._folder_gone(w)

    def _folder_gone(self, w: FolderWatcher) -> None:
        w.stop()
        self.gone.add(w.root)
        self._trouble(f"watched folder {w.root} is gone (unplugged disk or unmounted share?); "
                      "watching for it to come back", rescan=False)

    def _trouble(self, message: str, rescan: bool = True) -> None:
        log.warning("%s: %s", self.dataset.name, message)
        self.warning = message
        if rescan:
            self._rescan_requested.set()
            self._attention.set()
        self.on_trouble(message)
        self._save_status(force=True)

    _last_status = 0.0
    _last_waiting = -1

    def _status_due(self) -> float | None:
        """Seconds until a changed waiting count may be written (None: the written one is current)."""
        if self.settler.waiting == self._last_waiting:
            return None
        return max(self._last_status + STATUS_INTERVAL - time.monotonic(), 0.0)

    def _save_status(self, force: bool = False) -> None:
        now = time.monotonic()
        waiting = self.settler.waiting
        if not force and (waiting == self._last_waiting or now - self._last_status < STATUS_INTERVAL):
            return
        self._last_status, self._last_waiting = now, waiting
        watch = ", ".join(f"{w.root}: {w.mode}" for w in self.watchers)
        self.queue.update_session(self.dataset.id, waiting=waiting, watch=watch, warning=self.warning,
                                  pid=os.getpid())
