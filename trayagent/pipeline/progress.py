"""What the pipeline reports and how it is tuned: the types the CLI, the agent and the bench read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import TransferSettings

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
