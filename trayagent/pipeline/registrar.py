"""The catalogue side of the pipeline: the dataset's record, its files, its harvested metadata, its
manifest and its end.

Registration never holds up the copies: while the catalogue is down, asks for a login or refuses
something only a person can fix, uploads go on and registration waits, then catches up from the
queue (every verified file waits there in state ``verified``). The engine asks this class what to
do and when; it owns the pauses and the backoff of the catalogue alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..catalogue.base import Catalogue, DatasetSpec, FileRecord, StorageLocation
from ..errors import AuthError, CatalogueError, LoginRequired
from ..queue import Dataset, Queue, QueuedFile, State
from ..storage.transfer import Transfer
from .hooks import Hooks, Status
from .manifest import stream_ro_crate
from .progress import backoff
from .spool import Spool

if TYPE_CHECKING:
    from ..metadata.harvest import Harvester

log = logging.getLogger(__name__)

MANIFEST_NAME = "ro-crate-metadata.json"
METADATA_PUSH_SECONDS = 10.0  # harvested metadata goes to the catalogue at most this often mid-dataset


class Registrar:
    """Registers what the engine verified, and ends datasets in the catalogue. UI-free: the owner
    sets the hooks (``on_login_needed``, ``on_catalogue_refused``) and the ``harvester``."""

    def __init__(self, queue: Queue, catalogue: Catalogue, transfer: Transfer, hooks: Hooks, status: Status,
                 location: Callable[[str], StorageLocation]) -> None:
        self.queue = queue
        self.catalogue = catalogue
        self.transfer = transfer
        self.status = status
        self.location = location  # storage path -> StorageLocation for the catalogue
        self.hooks = hooks
        self.paused_until = 0.0  # no catalogue call before this (time.time())
        self._refusals = 0  # refusals in a row: the retries back off from 5 s to 5 min
        self._described: dict[int, dict[str, Any]] = {}  # dataset id -> the spec the catalogue took from us
        self.harvester: Harvester | None = None  # metadata extraction beside the copy (set by the owner)
        self._harvest_pushed: dict[int, float] = {}  # dataset id -> when its summary last went to the catalogue
        self._harvest_unsent: set[int] = set()  # datasets with files harvested (or being) since that push

    def close(self) -> None:
        if self.harvester is not None:
            self.harvester.close()

    @property
    def paused(self) -> bool:
        return time.time() < self.paused_until

    # -- the dataset's record -------------------------------------------------------------------
    def ensure_catalogued(self, dataset: Dataset) -> Dataset:
        """The catalogue's dataset, made or found once, and given the spec of the latest run (a re-run
        with corrected entries: the queue holds the new spec, the catalogue still the old one)."""
        described = self._described.get(dataset.id) == dataset.spec
        if (dataset.catalogue_id and described) or self.paused:
            return dataset
        spec = DatasetSpec.from_dict(dataset.spec)
        try:
            if dataset.catalogue_id:
                self.catalogue.update_dataset(dataset.catalogue_id, spec)
                self._described[dataset.id] = dataset.spec
                return dataset
            cid = self.catalogue.ensure_dataset(spec, self.location(dataset.storage_path))
        except (CatalogueError, LoginRequired) as exc:
            self.trouble(exc)
            return dataset
        self._described[dataset.id] = dataset.spec
        self.queue.set_dataset(dataset.id, catalogue_id=cid)
        self._refusals = 0
        log.info("dataset %r is %s in the %s catalogue", dataset.name, cid, self.catalogue.kind)
        return self.queue.dataset(dataset.id)

    def trouble(self, exc: CatalogueError | AuthError) -> None:
        """Uploads go on; registration waits (login needed, or the catalogue is down)."""
        if isinstance(exc, CatalogueError) and not exc.transient:
            self.refused(exc)
            return
        self.status.waiting = f"catalogue: {exc.message}"
        self.paused_until = time.time() + (30 if isinstance(exc, LoginRequired) else 10)
        log.warning("registration paused: %s", exc)
        if isinstance(exc, LoginRequired):
            self.hooks.on_login_needed()

    def refused(self, exc: CatalogueError) -> None:
        """A refusal only a person can fix (configuration, groups, a trayagent bug). Without
        ``on_catalogue_refused`` it ends the run. With it, uploads go on and registration is tried
        again after 5 s, 10 s, ... 5 min (the catalogue re-reads a fixed configuration file; a login
        resumes at once): it catches up by itself, without a restart. Said once per distinct refusal."""
        if self.hooks.on_catalogue_refused is None:
            raise exc
        delay = backoff(self._refusals, 5.0, 300.0)
        self._refusals += 1
        why = f"catalogue refused registration: {exc}"
        told = self.status.waiting == why
        self.status.waiting = why
        self.paused_until = time.time() + delay
        if told:
            log.info("registration still refused; next try in %.0f s", delay)
            return
        log.error("registration refused; uploads go on, registration waits: %s", exc)
        self.hooks.on_catalogue_refused(exc)

    def resume(self) -> None:
        """A new login: registration is tried again now rather than at the end of the pause."""
        self.paused_until = 0.0
        self.status.waiting = None

    # -- files ----------------------------------------------------------------------------------
    def register_verified(self, dataset: Dataset) -> bool:
        """Hand verified files to the catalogue in the catalogue's preferred batch size (SciCat:
        one block of up to 20,000 files); a batch upload waits to fill a batch, sync does not."""
        if not dataset.catalogue_id or self.paused:
            return False
        size = self.catalogue.register_batch
        counts = self.queue.counts(dataset.id)
        in_flight = sum(counts[s.value] for s in (State.PENDING, State.UPLOADING, State.UPLOADED))
        if dataset.mode == "batch" and in_flight and counts[State.VERIFIED.value] < size:
            return False
        worked = False
        while batch := self.queue.due(dataset.id, State.VERIFIED, size, now=float("inf")):
            try:
                self.catalogue.register_files(dataset.catalogue_id, [record(f) for f in batch])
            except (CatalogueError, LoginRequired) as exc:
                self.trouble(exc)
                return worked
            self.queue.mark([f.id for f in batch], State.REGISTERED, expect=State.VERIFIED)
            self.status.waiting = None
            self._refusals = 0
            worked = True
        return worked

    # -- harvested metadata ---------------------------------------------------------------------
    def harvest(self, dataset_id: int, batch: list[QueuedFile]) -> None:
        """The batch's files to the metadata thread, beside the copy (queued: O(1) here)."""
        if self.harvester is not None:
            self.harvester.submit(dataset_id, batch)
            self._harvest_unsent.add(dataset_id)

    def push_metadata(self, dataset: Dataset, force: bool = False) -> None:
        """The harvested summary to the catalogue when it changed: at most every ``METADATA_PUSH_SECONDS``
        while files arrive (sync mode updates the dataset as it grows), and at the end."""
        harvester, cid = self.harvester, dataset.catalogue_id
        if harvester is None or cid is None or self.paused:
            return
        last = self._harvest_pushed.get(dataset.id)
        if not force and last is not None and time.monotonic() - last < METADATA_PUSH_SECONDS:
            return
        try:
            if last is None:  # first time in this process: fold in what an earlier run stored
                harvester.seed(dataset.id, self.catalogue.harvested(cid))
            reading = harvester.busy(dataset.id)  # files still being read: their part comes in a later push
            summary = harvester.take(dataset.id)
            if summary is not None:
                self.catalogue.set_harvested(cid, summary)
        except (CatalogueError, LoginRequired) as exc:
            harvester.untake(dataset.id)
            log.warning("harvested metadata of %r not stored yet: %s", dataset.name, exc.message)
            return
        self._harvest_pushed[dataset.id] = time.monotonic()
        if not reading:
            self._harvest_unsent.discard(dataset.id)

    def next_due(self, dataset_ids: Iterable[int], now: float) -> float:
        """When the catalogue side wants another look (time.time()); ``math.inf``: not before work comes."""
        due = self.paused_until if self.paused_until > now else math.inf
        for dataset_id in self._harvest_unsent.intersection(dataset_ids):
            # when the push throttle allows; a push that could not go (catalogue paused) waits a round
            left = self._harvest_pushed.get(dataset_id, -math.inf) + METADATA_PUSH_SECONDS - time.monotonic()
            due = min(due, now + (left if left > 0 else METADATA_PUSH_SECONDS))
        return due

    # -- the end --------------------------------------------------------------------------------
    def finish(self, dataset: Dataset, catalogue_id: str) -> None:
        """What the files say, the manifest next to the data, then the catalogue's completion mark.
        Raises what the catalogue or storage raise (the engine decides whether to wait)."""
        if self.harvester is not None:
            self.harvester.drain(dataset.id)
            self.push_metadata(dataset, force=True)
        self._write_manifest(dataset, catalogue_id)
        self.catalogue.finish_dataset(catalogue_id)

    def finished(self, dataset_id: int) -> None:
        """A later run (agent, sync) compares its spec with the catalogue again and harvests anew."""
        self._described.pop(dataset_id, None)
        if self.harvester is not None:
            self.harvester.forget(dataset_id)
            self._harvest_unsent.discard(dataset_id)

    def _write_manifest(self, dataset: Dataset, catalogue_id: str) -> None:
        """The RO-Crate manifest, streamed from the queue into a spool (memory while small, a scratch
        file beyond) and stored next to the data: flat memory for a million files."""
        info = self.catalogue.dataset_info(catalogue_id)

        def files() -> Iterator[FileRecord]:
            return (FileRecord(path, size, mtime_ns / 1e9, checksum, algorithm, verification)
                    for path, size, mtime_ns, checksum, algorithm, verification
                    in self.queue.iter_manifest_rows(dataset.id, State.REGISTERED))
        with Spool(self.transfer.scratch_dir) as out:
            stream_ro_crate(info, files, self.queue.iter_checksums(dataset.id, State.REGISTERED), out,
                            generator="trayagent")
            out.flush()
            if out.path is None:
                self.transfer.put_bytes(dataset.storage_path, MANIFEST_NAME, out.getvalue())
            else:
                self.transfer.put_file(dataset.storage_path, MANIFEST_NAME, out.path)


def record(f: QueuedFile) -> FileRecord:
    """The catalogue's view of a verified file."""
    return FileRecord(path=f.relpath, size=f.size or 0, mtime=(f.mtime_ns or 0) / 1e9,
                      checksum=f.checksum or "", algorithm=f.algorithm or "",
                      verification=f.verification or "size")
