"""Harvesting beside the upload: extractors run on a thread of their own, never on the upload's path.

The engine hands over each batch's files as rclone starts copying them (``submit`` only queues them:
O(1)). One dispatcher thread picks the extractors by file name ending and runs each on a fresh daemon
thread that it waits for at most ``seconds``: a slow or hung extractor is abandoned with a warning (a
thread cannot be killed, but nobody waits for it and it does not keep the process alive), and an
extractor that hung ``MAX_HANGS`` times is not used again in this process. Files above ``max_bytes``
are not read. Any exception is a warning, never a failed upload.

Priorities: while a dataset uploads, its files are read at low CPU priority (rclone and the acquisition
come first). An extractor's one-time set-up (``prepare``: importing h5py, ~0.2 s of CPU) runs at normal
priority, and so does whatever is left once the end of the dataset waits for it (``drain``): the upload
is over then, and on a busy two-core machine a thread at nice 10 gets a few per cent of a core, which
made a short upload of five NeXus files wait 1-2 s for work that takes 0.1 s.

Results fold into one ``Aggregate`` per dataset; ``take`` hands the engine a new summary when there
is one, and ``drain`` lets the end of a dataset wait for what is still to read, sized by that work, not
by a clock: not at all when every file is read; the last ``DRAIN_FILES`` files always (a short upload's
tail: milliseconds each at normal priority, each within its budget); more only within 5 % of the
dataset's upload time; at most 60 s (not counting budgets lost to hangs). An extractor at work may use
its budget. On a busy machine, thousands of small NeXus files sent to fast storage can outpace
extraction, and then the dataset is finished with what was read so far (``files_harvested`` tells how
many files the summary covers) rather than made to wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..platform.priority import lower_current_thread
from .aggregate import Aggregate
from .extractors import Extractor, all_extractors
from .model import Entry

log = logging.getLogger(__name__)

SECONDS = 5.0  # per file and extractor
MAX_BYTES = 64 << 30  # files bigger than this are not read
MAX_HANGS = 3
# The end of a dataset reads up to DRAIN_FILES files that are left, and more only within DRAIN_SHARE of
# the time since its first batch; at most DRAIN_MAX seconds (plus the time lost to extractors that hung,
# at most MAX_HANGS budgets per extractor). Nothing left to read: no wait.
DRAIN_FILES, DRAIN_SHARE, DRAIN_MAX = 50, 0.05, 60.0


class LocalFile(Protocol):
    """What ``submit`` takes: the queue's files (their path is built on the metadata thread)."""

    @property
    def local_path(self) -> Path: ...

    @property
    def src_rel(self) -> str: ...


@dataclass
class _Batch:
    """A submitted batch's files not started yet: ``files[first:end]``."""

    files: Sequence[LocalFile]
    first: int
    end: int


class _Dataset:
    def __init__(self) -> None:
        self.began = time.monotonic()
        self.aggregate = Aggregate()
        self.pending = 0  # files submitted and not read yet (queued or being read)
        self.done = 0  # files read (or skipped) so far
        self.todo: deque[_Batch] = deque()  # the files not started yet
        self.urgent = False  # the end of the dataset waits: read first, at normal priority
        self.dirty = False
        self.seen: set[tuple[str, int]] = set()

    def next_file(self) -> LocalFile | None:
        """Oldest first; once the end waits, newest first: if not all can be read, the summary still
        covers both ends of the dataset (its time range above all), not only its first part."""
        while self.todo:
            batch = self.todo[-1] if self.urgent else self.todo[0]
            if batch.first < batch.end:
                if self.urgent:
                    batch.end -= 1
                    return batch.files[batch.end]
                batch.first += 1
                return batch.files[batch.first - 1]
            if self.urgent:
                self.todo.pop()
            else:
                self.todo.popleft()
        return None


class Harvester:
    """Extracts metadata from a dataset's files in the background and keeps the per-dataset summary."""

    def __init__(self, extractors: Callable[[], Sequence[Extractor]] = all_extractors, *,
                 seconds: float = SECONDS, max_bytes: int = MAX_BYTES) -> None:
        self._load = extractors
        self._extractors: list[Extractor] | None = None
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._hangs: dict[str, int] = {}
        self._hung = 0.0  # seconds lost to extractors that hung: the end of a dataset does not count them
        self._datasets: dict[int, _Dataset] = {}
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._running: float | None = None  # when the extractor at work started (monotonic)

    # -- the engine's side ----------------------------------------------------------------------
    def submit(self, dataset_id: int, files: Sequence[LocalFile]) -> None:
        """Queue a batch of files for extraction: one queue entry, whatever the batch's size."""
        with self._lock:
            state = self._datasets.setdefault(dataset_id, _Dataset())
            state.pending += len(files)
            state.todo.append(_Batch(files, 0, len(files)))
            self._lock.notify_all()
        self._start()

    def seed(self, dataset_id: int, stored: dict[str, Any] | None) -> None:
        """Fold in the summary an earlier run stored in the catalogue (a restart goes on from it)."""
        if not stored:
            return
        with self._lock:
            state = self._datasets.setdefault(dataset_id, _Dataset())
            state.aggregate.merge(Aggregate.from_summary(stored))
            state.dirty = True

    def take(self, dataset_id: int) -> dict[str, Entry] | None:
        """The dataset's summary if it changed since the last ``take`` (else None)."""
        with self._lock:
            state = self._datasets.get(dataset_id)
            if state is None or not state.dirty:
                return None
            state.dirty = False
            return state.aggregate.summary()

    def untake(self, dataset_id: int) -> None:
        """The summary could not be stored: offer it again next time."""
        with self._lock:
            if dataset_id in self._datasets:
                self._datasets[dataset_id].dirty = True

    def busy(self, dataset_id: int) -> bool:
        with self._lock:
            state = self._datasets.get(dataset_id)
            return state is not None and state.pending > 0

    def drain(self, dataset_id: int, timeout: float | None = None) -> bool:
        """Wait until the dataset's queued files are read (True) or the time is up (False); no wait
        when they are. Meanwhile its files are read first, at normal priority. The time: ``timeout``,
        else as long as the last DRAIN_FILES files take and more within a share of the dataset's
        upload time (see DRAIN_SHARE); an extractor still at work may use the rest of its budget."""
        began = time.monotonic()
        with self._lock:
            state = self._datasets.get(dataset_id)
            if state is None or state.pending == 0:
                return True
            state.urgent = True
            grace = timeout is None
            if timeout is None:
                timeout = min(DRAIN_SHARE * (began - state.began), DRAIN_MAX)
            deadline, hung = began + timeout, self._hung
            tail = state.done + min(state.pending, DRAIN_FILES) if grace else 0  # read these in any case
            try:
                while state.pending > 0:
                    now = time.monotonic()
                    left = deadline + (self._hung - hung) - now
                    if grace and self._running is not None:
                        left = max(left, self._running + self.seconds - now + 0.1)
                    if state.done < tail and now < began + DRAIN_MAX + (self._hung - hung):
                        left = max(left, 0.1)
                    if left <= 0:
                        log.warning("metadata: %d files of dataset %d not read within %.1f s of its end; it is "
                                    "finished with what %d files gave (the upload does not wait longer)",
                                    state.pending, dataset_id, now - began, state.aggregate.files)
                        return False
                    self._lock.wait(min(left, 1.0))
            finally:
                state.urgent = False  # files that come later (sync) are read in the background again
        log.info("metadata: extraction done %.2f s after the end of dataset %d", time.monotonic() - began,
                 dataset_id)
        return True

    def forget(self, dataset_id: int) -> None:
        """The dataset is complete: files still queued for it are dropped when their turn comes."""
        with self._lock:
            self._datasets.pop(dataset_id, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # -- the dispatcher -------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="metadata", daemon=True)
            self._thread.start()

    def _next(self) -> tuple[int, LocalFile, bool] | None:
        """The next file to read: a dataset whose end waits for it first, then the oldest dataset's."""
        with self._lock:
            while not self._closed:
                for dataset_id, state in sorted(self._datasets.items(), key=lambda item: not item[1].urgent):
                    f = state.next_file()
                    if f is not None:
                        return dataset_id, f, state.urgent
                self._lock.wait()
        return None

    def _serve(self) -> None:
        """The dispatcher itself does little (a name ending, a stat); the reading is on the workers."""
        while (item := self._next()) is not None:
            self._one(*item)

    def _one(self, dataset_id: int, f: LocalFile, urgent: bool = False) -> None:
        found = None
        try:
            found = self._extract(dataset_id, f, urgent)
        except Exception:  # the harvester never takes the upload down
            log.exception("metadata: reading %s failed", f)
        with self._lock:
            state = self._datasets.get(dataset_id)
            if state is not None:
                state.pending -= 1
                state.done += 1
                if found is not None:
                    state.aggregate.add_file(found)
                    state.dirty = True
            self._lock.notify_all()

    def _extract(self, dataset_id: int, f: LocalFile, urgent: bool) -> dict[str, Entry] | None:
        with self._lock:
            if dataset_id not in self._datasets:
                return None
        if self._extractors is None:
            self._extractors = list(self._load())
        name = f.src_rel.rpartition("/")[2].lower()  # the name first: most files are of no format read here
        chosen = [e for e in self._extractors if name.endswith(e.suffixes) and self._hangs.get(e.name, 0) < MAX_HANGS]
        if not chosen:
            return None
        path = f.local_path  # built only for a file that is read
        try:
            st = path.stat()
        except OSError as exc:
            log.warning("metadata: %s cannot be read (%s); skipped", path, exc.strerror or exc)
            return None
        if st.st_size > self.max_bytes:
            log.warning("metadata: %s is %d bytes, over the %d-byte budget for reading metadata; skipped",
                        path, st.st_size, self.max_bytes)
            return None
        key = (str(path), st.st_mtime_ns)
        with self._lock:
            state = self._datasets.get(dataset_id)
            if state is None or key in state.seen:
                return None
            state.seen.add(key)
        found: dict[str, Entry] = {}
        for extractor in chosen:
            found.update(self._run(extractor, path, background=not urgent))
        return found or None

    def _run(self, extractor: Extractor, path: Path, background: bool = True) -> dict[str, Entry]:
        result: list[Any] = []

        def work() -> None:
            try:
                prepare = getattr(extractor, "prepare", None)
                if callable(prepare):  # once per process in effect: imports, at normal priority
                    prepare()
                if background:
                    lower_current_thread()
                result.append(extractor(path))
            except BaseException as exc:  # noqa: B036 - reported, whatever a plugin raises
                result.append(exc)
        worker = threading.Thread(target=work, name=f"extract-{extractor.name}", daemon=True)
        self._running = time.monotonic()
        worker.start()
        worker.join(self.seconds)
        hung = worker.is_alive()
        if hung:
            self._hung += self.seconds  # before _running is cleared: drain extends its time by it
        self._running = None
        if hung:
            self._hangs[extractor.name] = self._hangs.get(extractor.name, 0) + 1
            more = " it is not used again until trayagent restarts" if self._hangs[extractor.name] >= MAX_HANGS else ""
            log.warning("metadata: extractor %r took longer than %.0f s on %s; skipped;%s", extractor.name,
                        self.seconds, path, more)
            return {}
        got = result[0] if result else {}
        if isinstance(got, BaseException):
            log.warning("metadata: extractor %r cannot read %s (%s: %s); skipped", extractor.name, path,
                        type(got).__name__, got)
            return {}
        if not isinstance(got, dict):
            log.warning("metadata: extractor %r answered %s for %s, not a dict; skipped", extractor.name,
                        type(got).__name__, path)
            return {}
        return _entries(got)


def _entries(got: dict[Any, Any]) -> dict[str, Entry]:
    """A plugin's answer as entries: bare values are wrapped, keys are text."""
    out: dict[str, Entry] = {}
    for key, item in got.items():
        if isinstance(item, dict) and "value" in item:
            out[str(key)] = {"value": item["value"], "unit": str(item.get("unit") or "")}
        else:
            out[str(key)] = {"value": item, "unit": ""}
    return out
