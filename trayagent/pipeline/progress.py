"""What the pipeline reports and how it is tuned: the types the CLI, the agent and the bench read,
and the tracker that turns the queue's counters into throttled progress snapshots."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import TransferSettings

if TYPE_CHECKING:
    from ..queue import Dataset, Queue
    from ..storage.transfer import Transfer

_TRANSFER = TransferSettings()  # the defaults of the configuration are the pipeline's


@dataclass
class Tuning:
    """The ``[transfer]`` knobs the pipeline uses."""

    batch_files: int = _TRANSFER.batch_files
    batch_bytes: int = _TRANSFER.batch_bytes
    checksum: str = _TRANSFER.checksum
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = _TRANSFER.retry_max_seconds
    full_retry_seconds: float = 300.0  # agent and sync: next try at a full storage
    hash_threads: int = 2
    verify_files: int = 4 * _TRANSFER.batch_files  # files read back in one go (fewer listings of big folders)

    @classmethod
    def of(cls, settings: TransferSettings) -> Tuning:
        return cls(batch_files=settings.batch_files, batch_bytes=settings.batch_bytes, checksum=settings.checksum,
                   retry_max_seconds=float(settings.retry_max_seconds), verify_files=4 * settings.batch_files)


def backoff(attempts: int, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter: spreads retries so a recovering server is not stormed."""
    delay = min(ceiling, base * (2.0 ** min(attempts, 30)))
    return delay * random.uniform(0.5, 1.0)


@dataclass
class Progress:
    """A snapshot for progress bars and status: counts per state, bytes, rate and ETA."""

    dataset: str
    counts: dict[str, int]
    bytes_total: int
    bytes_done: int
    rate: float  # bytes per second since the run started
    eta: float | None
    waiting: str | None = None  # why the engine is waiting (storage unreachable...), if it is

    @property
    def files_total(self) -> int:
        return sum(self.counts.values())

    @property
    def files_done(self) -> int:
        return self.counts.get("registered", 0) + self.counts.get("failed", 0)


@dataclass
class Outcome:
    """What happened to one dataset run; the CLI's ``--json`` prints it."""

    dataset: str
    files_ok: int
    files_failed: int
    bytes: int
    seconds: float
    failures: list[dict[str, str]] = field(default_factory=list)
    catalogue_id: str | None = None
    storage_path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_entry(cls, entry: dict[str, Any], seconds: float) -> Outcome:
        """The outcome of a dataset the agent ran, from its activity entry (``Uploader.activity``):
        the same result, fields and catalogue id as a run in this process."""
        return cls(dataset=entry["name"], files_ok=entry["files"]["registered"],
                   files_failed=entry["files"]["failed"], bytes=entry["bytes_done"], seconds=round(seconds, 3),
                   failures=list(entry["errors"]), catalogue_id=entry["catalogue_id"],
                   storage_path=entry["storage_path"])


class ProgressTracker:
    """Turns queue counts and rclone's live byte counter into throttled Progress snapshots."""

    def __init__(self, queue: Queue, transfer: Transfer, dataset: Dataset,
                 waiting: Callable[[], str | None], sink: Callable[[Progress], None] | None) -> None:
        self.queue = queue
        self.transfer = transfer
        self.dataset = dataset
        self.waiting = waiting
        self.sink = sink
        self.started = time.monotonic()
        self.in_flight: dict[str, int] = {}  # bytes sent so far by the job in flight, per lane
        self.base_done = self._done_bytes()
        self._last = 0.0

    def _done_bytes(self) -> int:
        b = self.queue.byte_counts(self.dataset.id)
        return b.get("registered", 0) + b.get("verified", 0) + b.get("uploaded", 0)

    def watch(self, lane: str) -> Callable[[int], None]:
        """The ``on_job`` callback of one lane's jobs; only the engine's own lane emits (the sink is
        called from one thread)."""
        def on_job(jobid: int) -> None:
            if self.sink and time.monotonic() - self._last > 0.25:
                self.in_flight[lane] = self.transfer.bytes_in_flight(jobid)
                if lane == "small":
                    self.emit()
        return on_job

    def job_done(self, lane: str) -> None:
        self.in_flight.pop(lane, None)

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.sink or (not force and now - self._last < 0.25):
            return
        self._last = now
        counts = self.queue.counts(self.dataset.id)
        total = sum(self.queue.byte_counts(self.dataset.id).values())
        done = min(self._done_bytes() + sum(self.in_flight.values()), total)
        rate = max(done - self.base_done, 0) / max(now - self.started, 1e-6)
        eta = (total - done) / rate if rate > 0 else None
        self.sink(Progress(self.dataset.name, counts, total, done, rate, eta, self.waiting()))
