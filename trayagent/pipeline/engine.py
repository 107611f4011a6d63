"""The upload pipeline: scan -> enqueue -> (hash || upload) -> verify -> register -> manifest.

Each stage reads its work from the queue database and commits its result there before the next
stage may act on it, so the engine holds no state that a crash could lose. Hashing runs while
rclone uploads the same batch (the bytes are read once from disk into the page cache and twice
from memory), which keeps the engine as fast as rclone alone on big files.

Verification compares what storage reports (size, and the backend's hash where it has one) with
the size and checksum taken from the local bytes, then re-stats the local file: a file that
changed since its checksum was taken goes back to the queue, never to the catalogue.

Where the checksum is the storage's own hash (MD5 on S3, any hash of the local backend), rclone
already computes it from the local bytes during the copy and compares it with what storage
stored, failing the copy on a mismatch. Hashing the file a second time in Python would only
compete with rclone and the server for the CPU, so the engine takes the size and mtime before
the copy, records the storage's hash after it, and re-stats the file: unchanged size and mtime
mean the recorded hash is the hash of the bytes that are there.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from ..catalogue.base import Catalogue, StorageLocation
from ..errors import AuthError, CatalogueError, LocalFileError, LoginRequired, StorageError, StorageFull
from ..logs import FOLD
from ..platform.priority import lower_current_thread
from ..queue import Dataset, DatasetState, Queue, QueuedFile, State
from ..storage.rcerrors import RcError
from ..storage.transfer import RemoteFile, Transfer, rclone_name
from .checksum import FAST_STRONG, Digest, hash_file, stat_file
from .hooks import Hooks, Status
from .lanes import BIG_FILE_BYTES, Lane
from .manifest import load_media_types
from .progress import Outcome, Progress, ProgressTracker, Tuning, backoff
from .registrar import Registrar
from .scan import Filters, Source, batched, scan
from .setbacks import Setbacks
from .verify import CHANGED, MISSING, STAT_MAX, changed_since, check, read_back, stored_digest

log = logging.getLogger(__name__)

ENQUEUE_BATCH = 1000
BUSY_WAIT = 5.0    # longest sleep while something may need another look (a batch run, a dataset's end that failed)
IDLE_WAIT = 60.0   # longest sleep of a serving engine with nothing due: a safety net, ``wake`` is what ends it
TRIM_AFTER = 10.0  # quiet this long after work: rclone gives back the memory the work took (once)


class Engine:
    """Drives datasets from the queue to storage and catalogue. UI-free: callers pass callbacks."""

    def __init__(self, queue: Queue, transfer: Transfer, catalogue: Catalogue, tuning: Tuning,
                 location: Callable[[str], StorageLocation]) -> None:
        self.queue = queue
        self.transfer = transfer
        self.tuning = tuning
        self.hooks = Hooks()  # set by the owner
        self.status = Status()
        self.registrar = Registrar(queue, catalogue, transfer, self.hooks, self.status, location)
        self.stop_event = threading.Event()
        self.wake = threading.Event()  # set when work arrives (enqueue) or on stop
        self.paused = threading.Event()  # Pause all: no new batches (the one in flight finishes)
        self.setbacks = Setbacks(queue, transfer, tuning, self.hooks, self.status)
        self._hashers = ThreadPoolExecutor(tuning.hash_threads, thread_name_prefix="hash",
                                            initializer=lower_current_thread)  # yields to rclone and acquisition
        self._algorithm: str | None = None
        self._job_errors: dict[int, list[str]] = {}
        self._verify_hash: str | None = None
        self._hash_in_transit = False  # rclone computes and checks the checksum during the copy
        self._lane = Lane(self.wake.set)  # big files go beside the small ones (issue 24)

    def close(self) -> None:
        self._hashers.shutdown(wait=True)
        self.registrar.close()

    @property
    def waiting(self) -> str | None:
        """Why the engine waits (storage unreachable, catalogue down...), if it does."""
        return self.status.waiting

    # -- choosing the checksum ------------------------------------------------------------------
    def algorithm(self) -> str:
        """``auto``: the storage's own hash where it has one (so copies are hash-verified), else
        a fast strong hash computed here."""
        if self._algorithm is None:
            remote = self.transfer.preferred_hash()
            wanted = self.tuning.checksum
            self._algorithm = (remote or FAST_STRONG) if wanted == "auto" else wanted
            types = self.transfer.hash_types()
            self._verify_hash = self._algorithm if self._algorithm in types else None
            # rclone checks the first hash both sides support (the local source supports all)
            self._hash_in_transit = bool(types) and self._algorithm == types[0]
            log.info("checksum %s%s; storage %s", self._algorithm,
                     " (computed by rclone during the copy)" if self._hash_in_transit else "",
                     f"reports {self._verify_hash}: hash verification" if self._verify_hash
                     else "reports no matching hash: size verification")
        return self._algorithm

    # -- enqueueing -----------------------------------------------------------------------------
    def enqueue(self, dataset: Dataset, sources: Sequence[Source], filters: Filters,
                errors: list[str] | None = None) -> int:
        """Scan the sources into the queue in bounded batches; returns the files (re)queued."""
        queued = 0
        for chunk in batched(scan(sources, filters, errors), ENQUEUE_BATCH):
            queued += self.queue.enqueue(dataset.id, chunk)
        if queued == 0 and dataset.finished is not None and self._settled(dataset.id):
            # uploaded, registered and described before, and nothing changed since: like `rclone copy`
            # to a filled destination, a re-run costs the scan and the comparison, nothing more
            self.queue.set_dataset(dataset.id, scan_done=1, manifest_done=1, state=DatasetState.COMPLETE)
            log.info("dataset %r: nothing new or changed since it was completed", dataset.name)
            return 0
        self.queue.set_dataset(dataset.id, scan_done=1)
        self.wake.set()
        return queued

    def _settled(self, dataset_id: int) -> bool:
        """Every file of the dataset registered (none waiting, in flight or failed)."""
        counts = self.queue.counts(dataset_id)
        return all(n == 0 for state, n in counts.items() if state != State.REGISTERED.value)

    # -- the main loop --------------------------------------------------------------------------
    def run(self, dataset_id: int, on_progress: Callable[[Progress], None] | None = None,
            finalize: bool = True) -> Outcome:
        """Work until every file of the dataset is registered or failed (or ``stop_event``)."""
        started = time.monotonic()
        self.queue.recover_interrupted(dataset_id)
        dataset = self.queue.dataset(dataset_id)
        if not self._reach_storage(dataset):
            return self._outcome(dataset, time.monotonic() - started)
        tracker = self._tracker(dataset, on_progress)
        while not self.stop_event.is_set():
            self.wake.clear()  # before the step: a wake-up set during it ends the next wait at once
            dataset = self.queue.dataset(dataset_id)
            if dataset.state == DatasetState.COMPLETE:  # nothing changed since it was (enqueue)
                break
            worked = self._step(dataset, tracker)
            if self._finished(dataset) and (not finalize or self._finalize(dataset)):
                break
            if not worked:
                self._wait_for_due([dataset_id])
        self._lane.join()  # a big file in flight when stopped: its job ends and is recorded first
        tracker.emit(force=True)
        return self._outcome(dataset, time.monotonic() - started)

    def serve(self, dataset_ids: Callable[[], list[int]],
              on_complete: Callable[[Outcome], None] | None = None,
              on_progress: Callable[[Progress], None] | None = None) -> None:
        """The long-running loop of sync sessions (and the agent): every active dataset gets a turn;
        a dataset whose files are all done and whose scanning is over is finalized. Sleeps on
        ``wake`` (set by whoever enqueues, pauses, resumes or stops) when there is nothing to do:
        until the next retry or pause is due, with no fixed polling (idle costs no wake-ups)."""
        trackers: dict[int, ProgressTracker] = {}
        was_working = False
        trim_at: float | None = None  # when rclone is to give back memory (after work, once quiet)
        while not self.stop_event.is_set():
            self.wake.clear()
            if self.paused.is_set():
                self.wake.wait(IDLE_WAIT)  # Resume sets ``wake``
                continue
            worked = unfinished = False
            for dataset_id in dataset_ids():
                dataset = self.queue.dataset(dataset_id)
                if dataset.state != "active":
                    continue
                if dataset_id not in trackers:
                    self.queue.recover_interrupted(dataset_id)
                    if not self._reach_storage(dataset):
                        return
                    trackers[dataset_id] = self._tracker(dataset, on_progress)
                worked |= self._step(dataset, trackers[dataset_id])
                unfinished |= self._end_if_finished(dataset, trackers, on_complete)
            if not worked:
                if was_working:  # the last snapshot before a long sleep shows where the work ended
                    for tracker in trackers.values():
                        tracker.emit(force=True)
                    trim_at = time.monotonic() + TRIM_AFTER
                trim_at = self._trim_if_due(trim_at)
                longest = BUSY_WAIT if unfinished else IDLE_WAIT
                if trim_at is not None:
                    longest = min(longest, max(trim_at - time.monotonic(), 0.05))
                self._wait_for_due(dataset_ids(), longest)
            was_working = worked

    def _tracker(self, dataset: Dataset, sink: Callable[[Progress], None] | None) -> ProgressTracker:
        return ProgressTracker(self.queue, self.transfer, dataset, lambda: self.status.waiting, sink)

    def _trim_if_due(self, trim_at: float | None) -> float | None:
        """Once quiet for ``TRIM_AFTER`` after work (no big file in flight either), rclone gives back
        what the work left in it: sync sessions sit idle for hours after a burst. Returns the
        trim time still to come (None: done, or nothing to do)."""
        if trim_at is None or time.monotonic() < trim_at:
            return trim_at
        if self._lane.busy:
            return time.monotonic() + TRIM_AFTER
        self.transfer.trim()
        return None

    def _end_if_finished(self, dataset: Dataset, trackers: dict[int, ProgressTracker],
                         on_complete: Callable[[Outcome], None] | None) -> bool:
        """Finalize a dataset whose files are all done and whose scanning is over; True when that
        is so but its end could not be written yet (e.g. the catalogue down): looked at again soon."""
        if not self._finished(dataset):
            return False
        if not self._finalize(dataset):
            return True
        if on_complete:
            on_complete(self._outcome(dataset, time.monotonic() - trackers.pop(dataset.id).started))
        return False

    def _step(self, dataset: Dataset, tracker: ProgressTracker) -> bool:
        """One turn for one dataset: send a batch (the dataset is catalogued while rclone copies it),
        register what's verified."""
        worked = self._upload_next_batch(dataset, tracker)
        dataset = self.registrar.ensure_catalogued(self.queue.dataset(dataset.id))
        worked |= self.registrar.register_verified(dataset)
        self.registrar.push_metadata(dataset)
        tracker.emit()
        return worked

    def _reach_storage(self, dataset: Dataset) -> bool:
        """Check access (auth errors raise at once); wait out an unreachable server. False: stopped."""
        attempt = 0
        while not self.stop_event.is_set():
            try:
                self.transfer.check_access(dataset.storage_path)
                self.algorithm()
                self.status.waiting = None
                return True
            except StorageError as exc:
                if self.setbacks.pauses_when_full(exc):
                    self.stop_event.wait(self.tuning.full_retry_seconds)
                    continue
                if not exc.transient:
                    raise
                delay = backoff(attempt, self.tuning.retry_base_seconds, self.tuning.retry_max_seconds)
                self.status.waiting = f"storage unreachable: {exc.message} (retrying in {delay:.0f} s)"
                log.warning("storage unreachable (%s); retry in %.1f s", exc.message, delay, extra=FOLD)
                self.stop_event.wait(delay)
                attempt += 1
        return False

    def _finished(self, dataset: Dataset) -> bool:
        counts = self.queue.counts(dataset.id)
        busy = sum(counts[s.value] for s in (State.PENDING, State.UPLOADING, State.UPLOADED, State.VERIFIED))
        return busy == 0 and self.queue.dataset(dataset.id).scan_done

    def _wait_for_due(self, dataset_ids: list[int], longest: float = BUSY_WAIT) -> None:
        """Sleep until the next thing due: a file's retry, the end of a catalogue or storage-full
        pause, a harvested summary to send; or until ``wake`` is set; at most ``longest`` seconds."""
        now = time.time()
        wake = now + longest
        for dataset_id in dataset_ids:
            due = self.queue.next_retry_time(dataset_id)
            wake = min(wake, due) if due is not None else wake
        if self.setbacks.full_until > now:
            wake = min(wake, self.setbacks.full_until)
        wake = min(wake, self.registrar.next_due(dataset_ids, now))
        self.wake.wait(min(max(wake - now, 0.05), longest))

    def resume_catalogue(self) -> None:
        """A new login: try registering again now rather than at the end of the pause."""
        self.registrar.resume()
        self.wake.set()

    # -- upload + verify ------------------------------------------------------------------------
    def _next_batch(self, dataset: Dataset, tracker: ProgressTracker) -> list[QueuedFile]:
        """Due files up to the batch limits. Files whose upload was interrupted (``maybe_stored``)
        travel in batches of their own, which ask storage first what it holds: the others keep
        the fast path that lists nothing. A due big file goes to the big lane if it is free (else
        it waits its turn there, and the small files behind it go on)."""
        batch: list[QueuedFile] = []
        total = 0
        for f in self.queue.due(dataset.id, State.PENDING, self.tuning.batch_files):
            if (f.size or 0) >= BIG_FILE_BYTES and not f.maybe_stored:
                if not self._lane.busy and self.queue.mark([f.id], State.UPLOADING, expect=State.PENDING):
                    self._lane.start(functools.partial(self._send, dataset, [f], tracker, None, "big"))
                continue
            if batch and (total + (f.size or 0) > self.tuning.batch_bytes
                          or f.maybe_stored != batch[0].maybe_stored):
                break
            batch.append(f)
            total += f.size or 0
        return self._still_as_sent(batch) if batch and batch[0].maybe_stored else batch

    def _still_as_sent(self, batch: list[QueuedFile]) -> list[QueuedFile]:
        """Interrupted files whose local size or mtime changed since: storage can only hold an
        older version, and a size-only comparison could take it for the new one. They are sent
        like new files (in a later batch)."""
        changed = [f for f in batch if changed_since(f, stored_digest(f))]
        if changed:
            self.queue.forget_stored([f.id for f in changed])
        kept = [f for f in batch if f not in changed]
        return kept or [f._replace(maybe_stored=False) for f in changed]

    def _upload_next_batch(self, dataset: Dataset, tracker: ProgressTracker) -> bool:
        """Send one batch; while rclone works, verify and register what earlier batches sent."""
        if time.time() < self.setbacks.full_until:  # storage full: paused until the next slow try
            return False
        self._lane.check()
        batch = self._next_batch(dataset, tracker)
        if not batch:
            return self._verify_uploaded(dataset, force=True)
        self.queue.mark([f.id for f in batch], State.UPLOADING, expect=State.PENDING)

        def meanwhile() -> None:
            """While rclone copies: the catalogue's dataset (a SciCat round trip or several) and
            the registration of earlier batches. Storage access was checked before any of it."""
            current = self.registrar.ensure_catalogued(dataset)
            self._verify_uploaded(current, force=False)
            self.registrar.register_verified(current)
            load_media_types()  # for the manifest at the end, read now while rclone works
        self._send(dataset, batch, tracker, meanwhile, "small")
        # at once when nothing is left to send, or when a few files wait (one stat each, whatever the
        # folder's size): files arriving while others upload (sync) must not wait for a quiet moment
        if (self.queue.counts(dataset.id)[State.UPLOADED.value] <= STAT_MAX
                or not self.queue.due(dataset.id, State.PENDING, 1)):
            self._verify_uploaded(dataset, force=True)
        return True

    def _transfers(self, lane: Literal["small", "big"]) -> int | None:
        """The lane's share of ``[transfer] transfers``: one for the big file, the others for the
        loop's batch while it runs (None: all of them)."""
        if lane == "big":
            return 1
        return max(1, self.transfer.transfers - 1) if self._lane.busy else None

    def _send(self, dataset: Dataset, batch: list[QueuedFile], tracker: ProgressTracker,
              meanwhile: Callable[[], None] | None, lane: Literal["small", "big"]) -> None:
        """Copy files marked ``uploading`` and record what became of each (``uploaded``, or back to
        the queue); ``meanwhile`` runs while rclone copies. The big lane's job takes one transfer
        slot; the small files' job the others while it runs (``[transfer] transfers`` in all)."""
        transfers = self._transfers(lane)
        ids = [f.id for f in batch]
        digests = self._start_digests(batch)
        self.registrar.harvest(dataset.id, batch)
        refused: list[CatalogueError | StorageFull] = []

        def in_between() -> None:
            try:
                if meanwhile is not None:
                    meanwhile()
            except (CatalogueError, StorageFull) as exc:  # raised once this batch's copy is recorded
                refused.append(exc)
        try:
            errors = self.transfer.copy_batch(dataset.storage_path, batch, on_job=tracker.watch(lane),
                                              meanwhile=in_between, check_dest=batch[0].maybe_stored,
                                              transfers=transfers)
        except (RcError, StorageError) as exc:
            errors = [getattr(exc, "error", None) or str(exc)]
        finally:
            tracker.job_done(lane)
        auth = next((p for p in map(self.transfer.explain, errors) if isinstance(p, AuthError)), None)
        if auth is not None:
            self.queue.mark(ids, State.PENDING, expect=State.UPLOADING)
            raise auth
        self._job_errors[dataset.id] = errors
        same, fresh = [], []
        for f in batch:
            digest = digests[f.id].result()
            if isinstance(digest, LocalFileError):
                self.setbacks.local_problem(f, digest)
            elif (digest.value, digest.size, digest.mtime_ns, digest.algorithm) != (
                    f.checksum or "", f.size, f.mtime_ns, f.algorithm):
                fresh.append((f.id, digest.size, digest.mtime_ns, digest.value, digest.algorithm))
            else:
                same.append(f.id)
        self.queue.mark_uploaded(fresh, same)
        if refused:
            raise refused[0]

    def _start_digests(self, batch: list[QueuedFile]) -> dict[int, Future[Digest | LocalFileError]]:
        """Checksums hashed here run beside the copy; with the hash computed in transit the stat
        is taken now, before rclone reads a byte."""
        if not self._hash_in_transit:
            return {f.id: self._hashers.submit(self._digest, f) for f in batch}
        out: dict[int, Future[Digest | LocalFileError]] = {}
        for f in batch:
            out[f.id] = Future()
            out[f.id].set_result(self._digest(f))
        return out

    def _digest(self, f: QueuedFile) -> Digest | LocalFileError:
        """The file's checksum (stored in the queue by the caller), reusing the stored one while
        size and mtime are unchanged."""
        algorithm = self.algorithm()
        try:
            if f.checksum and f.algorithm == algorithm:
                st = os.stat(f.local_file)
                if (st.st_size, st.st_mtime_ns) == (f.size, f.mtime_ns):
                    return Digest(f.size or 0, f.mtime_ns or 0, f.checksum, algorithm)
            if self._hash_in_transit:
                return stat_file(f.local_file, algorithm)
            return hash_file(f.local_path, algorithm)
        except LocalFileError as exc:
            return exc
        except OSError as exc:
            return LocalFileError(f"{f.local_path}: {exc.strerror or exc}", transient=False)

    def _verify_uploaded(self, dataset: Dataset, force: bool) -> bool:
        """Read back what storage holds for uploaded files and compare. Done in bulk (one listing
        per folder for thousands of files) unless ``force``: listing a flat folder after every
        batch would cost time quadratic in its size."""
        limit = max(self.tuning.verify_files, 1)
        waiting = self.queue.counts(dataset.id)[State.UPLOADED.value]  # a counter: no rows read to decide
        if not waiting or (not force and waiting < limit):
            return False
        files = self.queue.due(dataset.id, State.UPLOADED, limit, now=float("inf"))
        stored = self._read_back(dataset, files)
        verified, retry = [], []
        for f in files:
            verdict = self._check_one(f, stored_digest(f), stored.get(rclone_name(f.relpath)))
            if verdict is None:
                retry.append(f)
            elif verdict != SETTLED:
                verified.append((f.id, *verdict))
        self._mark_verified(verified, files)
        if retry:
            self._retry_each(dataset, retry, self._job_errors.get(dataset.id, []))
        return True

    def _mark_verified(self, rows: list[tuple[int, str, str]], files: list[QueuedFile]) -> None:
        """One commit for the lot (thousands of files per listing)."""
        names = {f.id: f.relpath for f in files}
        for fid in self.queue.mark_verified(rows):
            log.info("%s: requeued by a rescan while uploading; its new version follows", names.get(fid, fid))

    def _read_back(self, dataset: Dataset, files: list[QueuedFile]) -> dict[str, RemoteFile]:
        return read_back(self.transfer, dataset.storage_path, files, self._verify_hash)

    def _check_one(self, f: QueuedFile, digest: Digest,
                   remote: RemoteFile | None) -> tuple[str, str] | Literal["settled"] | None:
        """(verification level, checksum) for a verified file; ``SETTLED`` when the file was
        sent back for its new version or failed; None when storage does not hold it (yet)."""
        verdict = check(f, digest, remote, self._verify_hash)
        if verdict == MISSING:
            return None
        if verdict == CHANGED:
            self.setbacks.changed(f)
            return SETTLED
        if isinstance(verdict, LocalFileError):
            if verdict.transient:
                self.setbacks.changed(f)
            else:
                self.setbacks.local_problem(f, verdict)
            return SETTLED
        assert isinstance(verdict, tuple)
        return verdict

    def _retry_each(self, dataset: Dataset, files: list[QueuedFile], errors: list[str]) -> None:
        """Files the batch did not land: one by one, to learn each file's own error. When storage
        itself is the trouble (down, full) the rest wait with the file that found it, due together,
        instead of each failing slowly alone; a stop leaves them ``uploaded``, for the next run to
        read back before it sends anything."""
        for i, f in enumerate(files):
            if self.stop_event.is_set():
                return
            try:
                self.transfer.copy_one(dataset.storage_path, f)
            except (RcError, StorageError) as exc:
                if self.setbacks.storage_problem(f, getattr(exc, "error", None) or str(exc), files[i + 1:]):
                    return
                continue
            stored = self._read_back(dataset, [f]).get(rclone_name(f.relpath))
            verdict = self._check_one(f, stored_digest(f), stored)
            if verdict is None:
                why = "the stored copy does not match (size or checksum)" if stored else "not found in storage"
                self.setbacks.mismatch(f, f"{why} after upload; {'; '.join(errors)[:300]}".rstrip("; "))
            elif verdict != SETTLED:
                self._mark_verified([(f.id, *verdict)], [f])

    # -- the end --------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

    def _finalize(self, dataset: Dataset) -> bool:
        """Manifest next to the data, then the catalogue's completion mark. False: not yet possible."""
        dataset = self.queue.dataset(dataset.id)
        if dataset.catalogue_id is None:
            return False
        try:
            self.registrar.finish(dataset, dataset.catalogue_id)
        except LoginRequired as exc:
            self.registrar.trouble(exc)
            return False
        except (StorageError, CatalogueError) as exc:
            if isinstance(exc, CatalogueError) and not exc.transient:
                self.registrar.refused(exc)
                return False
            if not exc.transient and not self.setbacks.pauses_when_full(exc):
                raise
            self.status.waiting = f"finishing {dataset.name}: {exc.message}"
            log.warning("cannot finish dataset %r yet: %s", dataset.name, exc.message)
            return False
        self.queue.set_dataset(dataset.id, manifest_done=1, state="complete", finished=time.time())
        self.registrar.finished(dataset.id)
        log.info("dataset %r complete", dataset.name)
        return True

    def _outcome(self, dataset: Dataset, seconds: float) -> Outcome:
        """From the queue's counters; only the failed files are listed (a page at a time)."""
        dataset = self.queue.dataset(dataset.id)
        counts, sizes = self.queue.counts(dataset.id), self.queue.byte_counts(dataset.id)
        failed = [{"path": f.relpath, "reason": f.last_error or ""}
                  for f in self.queue.iter_files(dataset.id, State.FAILED)]
        return Outcome(dataset=dataset.name, files_ok=counts[State.REGISTERED.value], files_failed=len(failed),
                       bytes=sizes.get(State.REGISTERED.value, 0), seconds=round(seconds, 3),
                       failures=failed, catalogue_id=dataset.catalogue_id, storage_path=dataset.storage_path)


SETTLED: Literal["settled"] = "settled"  # _check_one: the file went back to the queue (or failed)


def source_paths(sources: Sequence[Source]) -> tuple[str, ...]:
    return tuple(str(s.root / s.only) if s.only else str(s.root) for s in sources)
