"""The catalogue contract: what the engine needs from any data catalogue (local SQLite, SciCat).

The engine calls these in order: ``ensure_dataset`` once per dataset (idempotent: the same spec and
location must return the same id, so a re-run or a restart never makes a second dataset; a dataset
found again takes the spec's user metadata, see ``update_dataset``), then
``register_files`` with batches of *verified* files (idempotent upsert keyed by relative path: a file
registered again, e.g. after a crash or because it was modified, updates its entry, never duplicates
it), then ``finish_dataset`` when the dataset is complete.

Errors: raise ``CatalogueError`` (``transient=True`` for network errors and 5xx, so the queue retries),
``LoginRequired`` when the session expired and cannot be renewed (the engine pauses registration and
keeps uploading).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import CatalogueError


@dataclass(frozen=True)
class DatasetSpec:
    """What the user said about a dataset."""

    name: str
    proposal: str | None = None
    description: str | None = None
    investigation_description: str | None = None
    owner: str | None = None
    creation_location: str | None = None
    source_folders: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSpec:
        """The spec as stored in the queue (JSON: lists where the dataclass has tuples)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class StorageLocation:
    """Where the dataset's files land. ``url`` never contains a secret."""

    url: str  # e.g. "webdav+http://127.0.0.1:8080/dav" or "file:///home/u/.local/share/..."
    host: str  # storage host name ("localhost" for the local backend)
    path: str  # folder under the storage root, e.g. "20260123/run42"


@dataclass(frozen=True)
class FileRecord:
    """A verified file, ready to be registered."""

    path: str  # relative to the dataset folder, POSIX separators
    size: int
    mtime: float  # seconds since the epoch
    checksum: str
    algorithm: str  # e.g. "md5", "sha256"
    verification: str  # "hash" (remote hash compared) or "size" (remote size compared)


class Catalogue(ABC):
    """A data catalogue the engine registers datasets and files in."""

    kind: str = "abstract"
    register_batch: int = 1000  # files per register_files call the catalogue handles best

    @abstractmethod
    def ensure_dataset(self, spec: DatasetSpec, location: StorageLocation) -> str:
        """Find or create the dataset; return its catalogue id (stable across calls)."""

    @abstractmethod
    def update_dataset(self, dataset_id: str, spec: DatasetSpec) -> None:
        """Give an existing dataset the user's latest entries (a re-run with corrected values): the
        description, investigation description, keywords and metadata entries that ``spec`` gives
        replace what is there (the entries as a whole; what was harvested from the files stays, apart);
        what ``spec`` leaves empty is kept. The name, proposal, owner and storage stay as they are."""

    @abstractmethod
    def register_files(self, dataset_id: str, files: Sequence[FileRecord]) -> None:
        """Insert or update these files' entries in the dataset."""

    @abstractmethod
    def finish_dataset(self, dataset_id: str) -> None:
        """Mark the dataset complete (all files registered)."""

    @abstractmethod
    def dataset_info(self, dataset_id: str) -> dict[str, Any]:
        """The dataset as the catalogue holds it (for status, manifests and tests)."""

    @abstractmethod
    def list_files(self, dataset_id: str) -> list[FileRecord]:
        """Every file registered in the dataset."""

    def harvested(self, dataset_id: str) -> dict[str, Any]:
        """The metadata summary harvested from the dataset's files, as stored (empty: none yet)."""
        return {}

    def set_harvested(self, dataset_id: str, summary: dict[str, Any]) -> None:  # noqa: B027 - optional
        """Store the harvested summary beside (never over) what the user entered; a catalogue
        without a place for it keeps nothing."""

    def lookup_proposal(self, proposal_id: str) -> dict[str, str]:
        """What the catalogue knows of a proposal (title, PI...), to prefill the Dataset dialog."""
        raise CatalogueError(f"the {self.kind} catalogue has no proposals to look up")

    def preflight(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Raise ``CatalogueError`` now for a refusal certain to come (e.g. a required field the
        configuration cannot fill), so a batch upload stops before sending what could not be
        catalogued. The default knows of none."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Release connections; the default has nothing to release."""
