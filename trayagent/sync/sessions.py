"""The sync sessions of one process, kept in one place: started, restored after a restart, finalized
on request (also a request another process wrote into the queue), retired once their dataset is
complete, stopped cleanly. The Uploader owns one; the CLI's ``sync`` and the agent both go through it,
so the session rows in the queue are written by this module only (and by each session's status).

Importing this module is cheap: watchdog comes in with the first session that starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..pipeline.scan import Filters, Source
from ..queue import Dataset, DatasetState, Queue, SessionState

if TYPE_CHECKING:  # watchdog: imported where a session starts
    from .session import SyncSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncTiming:
    """The ``[sync]`` settings a session runs with."""

    quiet_seconds: float
    polling: bool
    rescan_seconds: float


class SyncSessions:
    """The running sessions of this process, by dataset id."""

    def __init__(self, queue: Queue, timing: SyncTiming, try_claim: Callable[[int], bool]) -> None:
        self.queue = queue
        self.timing = timing
        self._try_claim = try_claim
        self._running: dict[int, SyncSession] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[int]:
        with self._lock:
            return list(self._running)

    def names(self) -> list[tuple[int, str]]:
        """(dataset id, dataset name) of each running session, by id."""
        with self._lock:
            return sorted((i, s.dataset.name) for i, s in self._running.items())

    def __contains__(self, dataset_id: int) -> bool:
        return dataset_id in self._running

    def __bool__(self) -> bool:
        return bool(self._running)

    def gone_folders(self) -> set[str]:
        """Watched folders that have disappeared (an unmounted share, a deleted folder)."""
        with self._lock:
            sessions = list(self._running.values())
        return {str(root) for s in sessions for root in s.gone}

    # -- starting -------------------------------------------------------------------------------
    def start(self, dataset: Dataset, sources: Sequence[Source], filters: Filters,
              wake: Callable[[], None]) -> None:
        """Record a new session (restored after restarts) and start watching."""
        from .session import sources_to_json

        self.queue.save_session(dataset.id, sources_to_json(list(sources)),
                                {"include": list(filters.include), "exclude": list(filters.exclude)})
        self._start(dataset, list(sources), filters, wake)

    def restore(self, wake: Callable[[], None]) -> list[Dataset]:
        """Start again every session that was running (or asked to finalize) when its process ended."""
        from .session import sources_from_json

        restored = []
        for row in self.queue.sessions(SessionState.RUNNING, SessionState.FINALIZE):
            if row.dataset_id in self._running or not self._try_claim(row.dataset_id):
                continue
            dataset = self.queue.dataset(row.dataset_id)
            filters = Filters(tuple(row.filters["include"]), tuple(row.filters["exclude"]))
            self._start(dataset, sources_from_json(row.sources), filters, wake)
            restored.append(dataset)
        return restored

    def _start(self, dataset: Dataset, sources: list[Source], filters: Filters, wake: Callable[[], None]) -> None:
        from .session import SyncSession

        self.queue.set_dataset(dataset.id, state=DatasetState.ACTIVE, scan_done=0)
        t = self.timing
        session = SyncSession(self.queue, dataset, sources, filters, quiet_seconds=t.quiet_seconds,
                              polling=t.polling, rescan_seconds=t.rescan_seconds, wake=wake)
        with self._lock:
            self._running[dataset.id] = session
        session.start()
        wake()  # the engine takes the dataset up now (catalogue entry), not at its next look

    # -- finishing ------------------------------------------------------------------------------
    def request_finalize(self, name: str) -> Dataset:
        """Mark the newest session of the dataset ``name`` for finalizing; its owner does it."""
        rows = [r for r in self.queue.sessions(SessionState.RUNNING, SessionState.STOPPED, SessionState.FINALIZE)
                if self.queue.dataset(r.dataset_id).name == name]
        if not rows:
            raise ConfigError(f"no sync session for a dataset named {name!r}",
                              "See the status for the sessions there are.")
        dataset = self.queue.dataset(rows[-1].dataset_id)
        self.queue.update_session(dataset.id, state=SessionState.FINALIZE)
        from .watcher import Doorbell

        Doorbell.ring(self.requests_folder)  # the process running the session looks now
        return dataset

    @property
    def requests_folder(self) -> Path:
        """Where ``request_finalize`` rings the processes that run sessions (see ``watch_requests``)."""
        return self.queue.path.parent / "sync-requests"

    def watch_requests(self, on_request: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``on_request`` when another process asks for a session's end; returns what stops the
        watch, or None if the folder cannot be watched (the caller then looks every second)."""
        from .watcher import Doorbell

        bell = Doorbell(self.requests_folder, on_request)
        return bell.stop if bell.start() else None

    def finalize(self, dataset_id: int) -> bool:
        """Finish the session now (in a thread: a final scan may take a while); False if none runs."""
        session = self._running.get(dataset_id)
        if session is None:
            return False
        threading.Thread(target=session.finalize, name="finalize", daemon=True).start()
        return True

    def honour_finalize_requests(self) -> None:
        """Finalize each running session that another process (or the user) asked to finish."""
        for row in self.queue.sessions(SessionState.FINALIZE):
            session = self._running.get(row.dataset_id)
            if session is not None and not session.finalizing:
                log.info("finalizing sync dataset %r", session.dataset.name)
                session.finalize()

    def retire_completed(self) -> list[int]:
        """Sessions whose dataset is complete end here: marked finalized, no longer running."""
        with self._lock:
            done = [i for i in self._running if self.queue.dataset(i).state == DatasetState.COMPLETE]
            for dataset_id in done:
                self._running.pop(dataset_id)
        for dataset_id in done:
            self.queue.update_session(dataset_id, state=SessionState.FINALIZED)
        return done

    def warn_all(self, message: str) -> None:
        with self._lock:
            sessions = list(self._running.items())
        for dataset_id, session in sessions:
            session.warning = message
            self.queue.update_session(dataset_id, warning=message)

    # -- stopping -------------------------------------------------------------------------------
    def stop_one(self, dataset_id: int) -> bool:
        """The user's Stop: watching ends, queued files stay queued; False if no such session runs."""
        with self._lock:
            session = self._running.pop(dataset_id, None)
        if session is None:
            return False
        session.stop()
        self.queue.update_session(dataset_id, state=SessionState.STOPPED)
        return True

    def stop_all(self) -> None:
        """Clean stop of the process: watching ends, queued files stay queued; the sessions that
        were running resume at the next start."""
        with self._lock:
            sessions = list(self._running.items())
        for dataset_id, session in sessions:
            session.stop()
            if self.queue.dataset(dataset_id).state == DatasetState.ACTIVE and not session.finalizing:
                self.queue.update_session(dataset_id, state=SessionState.RUNNING,
                                          waiting=session.settler.waiting)

    def close(self) -> None:
        with self._lock:
            sessions = list(self._running.values())
        for session in sessions:
            session.stop()
