"""What becomes of a file that could not be sent, verified or read: retried later with backoff, held
back while its storage is full, or failed and reported. One policy for every stage of the engine, so
that a batch, a single retried file and the dataset's end answer the same error the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ..errors import AuthError, LocalFileError, StorageFull
from ..logs import FOLD
from ..queue import Queue, QueuedFile, State
from ..storage.rcerrors import plain_error
from ..storage.transfer import Transfer
from .hooks import Hooks, Status
from .progress import Tuning, backoff

log = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS = 5


class Setbacks:
    """The retry, pause and failure decisions; ``full_until`` ends a storage-full pause. The owner
    hears of them through ``hooks.on_failure`` and ``hooks.on_storage_full``."""

    def __init__(self, queue: Queue, transfer: Transfer, tuning: Tuning, hooks: Hooks, status: Status) -> None:
        self.queue = queue
        self.transfer = transfer
        self.tuning = tuning
        self.status = status
        self.hooks = hooks
        self.full_until = 0.0

    def changed(self, f: QueuedFile) -> None:
        self.queue.retry_later(f.id, "the file changed during its upload; uploading the new version",
                               0.5, rehash=True)

    def storage_problem(self, f: QueuedFile, error: str, rest: Sequence[QueuedFile] = ()) -> bool:
        """Retry later or fail an uploaded file that storage does not confirm. True when storage
        itself is the trouble (down, full): ``rest``, the other unconfirmed files of the batch, then
        wait with ``f``, due together and asked about before they are sent again."""
        problem = self.transfer.explain(error)
        if isinstance(problem, AuthError):
            self.queue.mark([f.id], State.PENDING, expect=State.UPLOADED)
            raise problem
        if isinstance(problem, StorageFull):
            self.storage_full([f, *rest], problem)
            return True
        error = plain_error(error)  # a server's HTML error page shrunk to its words
        if problem.transient:
            delay = backoff(f.attempts, self.tuning.retry_base_seconds, self.tuning.retry_max_seconds)
            self.status.waiting = f"storage: {error} (retrying in {delay:.0f} s)"
            log.warning("%s: %s; retry in %.1f s (attempt %d)", f.relpath, error, delay, f.attempts + 1, extra=FOLD)
            self.queue.requeue_stored([f.id, *(g.id for g in rest)], error, delay)
            return True
        log.error("%s: %s", f.relpath, error)
        self.fail(f, error)
        return False

    def pauses_when_full(self, exc: Exception) -> bool:
        """A full storage where the caller waits for space (agent, sync): pause and tell the user."""
        if not isinstance(exc, StorageFull) or self.hooks.on_storage_full is None:
            return False
        delay = self.tuning.full_retry_seconds
        self.full_until = time.time() + delay
        self.status.waiting = f"{exc.message} (trying again in {delay / 60:.0f} min)"
        log.warning("%s; uploads to it paused, next try in %.0f s", exc.message, delay)
        self.hooks.on_storage_full(exc)
        return True

    def storage_full(self, files: Sequence[QueuedFile], problem: StorageFull) -> None:
        """Storage full or over quota: no file is failed for it (none is at fault). Without
        ``on_storage_full`` (a batch run) the files go back to the queue, due at once for the re-run
        after space is freed, and the run stops with the message. With it (agent, sync) the whole
        storage pauses for ``full_retry_seconds`` and the hook tells the user."""
        ids = [f.id for f in files]
        if self.hooks.on_storage_full is None:
            self.queue.requeue_stored(ids, problem.message, 0)
            raise problem
        self.pauses_when_full(problem)
        self.queue.requeue_stored(ids, problem.message, self.tuning.full_retry_seconds)

    def mismatch(self, f: QueuedFile, error: str) -> None:
        """Uploaded but not verifiable: retried a few times, then reported, never registered."""
        if f.attempts + 1 >= MAX_VERIFY_ATTEMPTS:
            log.error("%s: %s (after %d attempts)", f.relpath, error, f.attempts + 1)
            self.fail(f, f"{error} (after {f.attempts + 1} attempts)")
        else:
            self.queue.retry_later(f.id, error, backoff(f.attempts, self.tuning.retry_base_seconds,
                                                        self.tuning.retry_max_seconds), rehash=True)

    def fail(self, f: QueuedFile, reason: str) -> None:
        self.queue.fail(f.id, reason)
        try:
            self.hooks.on_failure(self.queue.dataset(f.dataset_id), f, reason)
        except Exception:
            log.exception("failure hook failed")

    def local_problem(self, f: QueuedFile, exc: LocalFileError) -> None:
        if exc.transient:
            delay = backoff(f.attempts, self.tuning.retry_base_seconds, self.tuning.retry_max_seconds)
            log.info("%s: %s; retry in %.1f s", f.relpath, exc.message, delay, extra=FOLD)
            self.queue.retry_later(f.id, exc.message, delay, rehash=True)
        else:
            log.error("%s", exc.message)
            self.fail(f, exc.message)
