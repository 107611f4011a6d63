"""The public face of the core: what the CLI (and later the agent and dialogs) call.

It wires configuration to the parts (queue, rclone daemon, transfer, catalogue, engine) and offers
whole operations: plan a dataset, preview it, submit it, run it to the end, report status. Nothing
here knows about terminals, trays or dialogs.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Self

from .catalogue.base import Catalogue, DatasetSpec, StorageLocation
from .catalogue.local import LocalCatalogue
from .config import Config
from .engine import Engine, Outcome, Progress, Tuning, source_paths
from .errors import ConfigError
from .lock import Busy, ProcessLock
from .naming import render_root
from .paths import Paths
from .queue import Dataset, Queue, State
from .rclone import RcError, RcloneDaemon, Redactor
from .scan import Filters, Source, plan_sources, scan
from .storage import StorageTarget, endpoint_host, launch_rclone, parallel_transfers, storage_target
from .transfer import Transfer

if TYPE_CHECKING:  # sync pulls in watchdog: imported where a session starts, not for every upload
    from .sync import SyncSession

log = logging.getLogger(__name__)


class ForeignDataset(ConfigError):
    """A queued dataset belongs to another storage or catalogue than this configuration's: it is
    finished where it was defined, never silently moved."""


@dataclass(frozen=True)
class Plan:
    """A dataset the user described, resolved: where each source goes."""

    spec: DatasetSpec
    sources: tuple[Source, ...]
    filters: Filters
    storage_path: str
    mode: str = "batch"


def make_catalogue(cfg: Config, paths: Paths) -> Catalogue:
    if cfg.catalogue.kind == "scicat":
        from .catalogue.scicat import ScicatCatalogue  # network code only where it is chosen

        return ScicatCatalogue.from_config(cfg, paths.data_dir / "scicat-index.sqlite")
    return LocalCatalogue(paths.catalogue_db)


class Uploader:
    """One configured instance of the pipeline. Use as a context manager: it owns rclone."""

    def __init__(self, cfg: Config, paths: Paths, redactor: Redactor | None = None,
                 daemon: RcloneDaemon | None = None) -> None:
        """``daemon``: an rclone the caller launched before importing the engine (the CLI does, so
        rclone's ~40 ms start-up overlaps the imports); the uploader owns and stops it."""
        self.cfg = cfg
        self.paths = paths.ensure()
        self.redactor = redactor or Redactor()
        self.queue = Queue(paths.queue_db)
        self.catalogue = make_catalogue(cfg, paths)
        self._daemon = daemon
        self._target: StorageTarget | None = None
        self._engine: Engine | None = None
        self._locks: dict[int, ProcessLock] = {}
        self.sessions: dict[int, SyncSession] = {}
        self.refused: list[ConfigError] = []  # queued datasets this configuration cannot finish

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for session in self.sessions.values():
            session.stop()
        if self._engine:
            self._engine.close()
        if self._daemon:
            self._daemon.stop()
        for lock in self._locks.values():
            lock.release()
        self.catalogue.close()
        self.queue.close()

    # -- planning -------------------------------------------------------------------------------
    def plan(self, paths: Sequence[str], *, dataset: str, proposal: str | None = None,
             description: str | None = None, investigation_description: str | None = None,
             include: Sequence[str] = (), exclude: Sequence[str] = (), mode: str = "batch") -> Plan:
        if not dataset.strip():
            raise ConfigError("the dataset name is empty", "Give one with --dataset NAME.")
        sources = tuple(plan_sources(paths))
        user = self.cfg.storage.user or getpass.getuser()
        storage_path = render_root(self.cfg.storage.root, dataset=dataset, proposal=proposal, user=user)
        spec = DatasetSpec(
            name=dataset, proposal=proposal, description=description,
            investigation_description=investigation_description, owner=getpass.getuser(),
            creation_location=self.cfg.dataset.creation_location or f"/{socket.gethostname()}",
            source_folders=source_paths(sources))
        filters = Filters(tuple(self.cfg.dataset.include) + tuple(include),
                          tuple(self.cfg.dataset.exclude) + tuple(exclude))
        return Plan(spec, sources, filters, storage_path, mode)

    def preview(self, plan: Plan, errors: list[str] | None = None) -> Iterator[tuple[str, str, int]]:
        """(local path, storage path, size) for each file: the dry run; touches nothing."""
        base = self.target(need_secret=False).display.rstrip("/")
        for f in scan(plan.sources, plan.filters, errors):
            yield f"{f.src_root}/{f.src_rel}", f"{base}/{plan.storage_path}/{f.relpath}", f.size

    # -- running --------------------------------------------------------------------------------
    def target(self, need_secret: bool = True) -> StorageTarget:
        """The storage target; with its secret from the keyring (read once) when ``need_secret``."""
        if not need_secret:
            return self._target or storage_target(self.cfg, self.paths, need_secret=False)
        if self._target is None:
            self._target = storage_target(self.cfg, self.paths, need_secret=True)
            if self._target.secret:
                self.redactor.add(self._target.secret)
        return self._target

    @property
    def engine(self) -> Engine:
        """Built on first use: takes the queue lock and starts rclone."""
        if self._engine is None:
            self.launch_rclone()
            assert self._daemon is not None
            target = self.target()
            if self.cfg.transfer.bwlimit:
                self._daemon.set_bwlimit(self.cfg.transfer.bwlimit)
            remote = self._remote_config(target)
            named_type = str(remote.get("type", ""))  # "" for on-the-fly remotes and local paths
            backend = named_type or ("local" if target.remote.local else target.remote.backend)
            transfers = parallel_transfers(self.cfg.transfer.transfers, backend)
            log.info("storage backend %s: %d parallel transfers", backend, transfers)
            transfer = Transfer(self._daemon, target, transfers=transfers, scratch_dir=self.paths.runtime_dir,
                                backend_type=named_type, preset=frozenset(remote))
            t = self.cfg.transfer
            tuning = Tuning(batch_files=t.batch_files, batch_bytes=t.batch_bytes, checksum=t.checksum,
                            retry_max_seconds=float(t.retry_max_seconds), verify_files=4 * t.batch_files)
            host = target.host or endpoint_host(remote)  # a named remote's endpoint, from its config
            self._engine = Engine(self.queue, transfer, self.catalogue, tuning,
                                  lambda path: StorageLocation(target.display, host, path))
        return self._engine

    def launch_rclone(self) -> None:
        if self._daemon is None:
            self._daemon = launch_rclone(self.cfg, self.paths, self.redactor)

    def _remote_config(self, target: StorageTarget) -> dict[str, Any]:
        """A named remote's rclone config: its type (webdav, s3...) decides how credentials are
        passed, and the options it sets are left as the user set them. Empty for on-the-fly remotes."""
        if target.remote.local or target.remote.head.startswith(":"):
            return {}
        assert self._daemon is not None
        name = target.remote.head.split(",")[0]
        try:
            return dict(self._daemon.call("config/get", {"name": name}))
        except RcError:
            raise ConfigError(f"[storage] remote: no rclone remote named {name!r}",
                              "Define it with `rclone config`, set [storage] rclone_config, or use a "
                              "connection string such as :webdav,url='https://host/dav':") from None

    def _lock(self, storage_url: str, storage_path: str, name: str) -> ProcessLock:
        """The dataset's lock, named by where it goes (known before the queue is touched)."""
        key = hashlib.sha256(f"{storage_url}\0{storage_path}".encode()).hexdigest()[:24]
        return ProcessLock(self.paths.runtime_dir / f"dataset-{key}.lock",
                           what=f"dataset {name!r} ({storage_url.rstrip('/')}/{storage_path})")

    def claim(self, dataset_id: int) -> None:
        """One process works on a dataset at a time (another dataset may run elsewhere), and only
        a process configured with the dataset's storage and catalogue (``ForeignDataset``)."""
        if dataset_id not in self._locks:
            dataset = self.queue.dataset(dataset_id)
            self._check_home(dataset)
            lock = self._lock(dataset.storage_url, dataset.storage_path, dataset.name)
            lock.acquire()
            self._locks[dataset_id] = lock

    def record(self, plan: Plan) -> Dataset:
        """Define (or re-activate) the dataset in the queue. The lock is taken first: re-activating
        resets the dataset's scan, and doing that under a process that is finishing it made that
        process wait for the end of a scan forever."""
        url = self.target(need_secret=False).display
        known = self.queue.find_dataset(url, plan.storage_path)
        lock = None
        if known is None or known.id not in self._locks:
            lock = self._lock(url, plan.storage_path, plan.spec.name)
            lock.acquire()
        try:
            if known is not None:
                self._check_home(known)
            dataset = self.queue.ensure_dataset(
                name=plan.spec.name, spec=_spec_dict(plan.spec), mode=plan.mode, storage_url=url,
                storage_path=plan.storage_path, catalogue_kind=self.catalogue.kind,
                catalogue_url=self._catalogue_url(), config=self._config_name())
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        if lock is not None:
            self._locks[dataset.id] = lock
        return dataset

    def _catalogue_url(self) -> str:
        return str(getattr(self.catalogue, "url", ""))

    def _config_name(self) -> str:
        return str(self.cfg.source.resolve()) if self.cfg.source else ""

    def _check_home(self, dataset: Dataset) -> None:
        """Refuse a dataset defined for another storage or catalogue, naming the configuration
        that can finish it."""
        here = self.target(need_secret=False).display
        moved = []
        if dataset.storage_url != here:
            moved.append(f"storage {dataset.storage_url}, not {here}")
        if dataset.catalogue_kind != self.catalogue.kind or (
                dataset.catalogue_url and dataset.catalogue_url != self._catalogue_url()):
            was = f"{dataset.catalogue_kind} {dataset.catalogue_url}".rstrip()
            now = f"{self.catalogue.kind} {self._catalogue_url()}".rstrip()
            moved.append(f"the {was} catalogue, not {now}")
        if not moved:
            return
        origin = f"--config {dataset.config}" if dataset.config else "the default configuration"
        raise ForeignDataset(
            f"dataset {dataset.name!r} was queued with {origin} for {' and '.join(moved)}; "
            "it is not moved to another storage or catalogue",
            f"Finish it with `trayagent resume {origin}`." if dataset.config else
            "Finish it with `trayagent resume` without --config (and without TRAYAGENT_CONFIG).")

    def submit(self, plan: Plan, errors: list[str] | None = None) -> Dataset:
        """Record the dataset and enqueue its files (bounded batches); returns the queue's dataset."""
        dataset = self.record(plan)
        self.engine.enqueue(dataset, plan.sources, plan.filters, errors)
        return self.queue.dataset(dataset.id)

    def run(self, dataset: Dataset, on_progress: Callable[[Progress], None] | None = None) -> Outcome:
        return self.engine.run(dataset.id, on_progress)

    def resume(self, on_progress: Callable[[Progress], None] | None = None) -> list[Outcome]:
        """Finish every batch dataset left active by an earlier, interrupted run (unless another
        process is working on it)."""
        outcomes = []
        for d in self.queue.datasets("active"):
            if d.mode != "batch" or not self.try_claim(d.id):
                continue
            if not d.scan_done:  # only its own upload knows the filters: resuming would wait forever
                self.refused.append(ConfigError(
                    f"the scan of dataset {d.name!r} was interrupted before it ended",
                    "Run the same `trayagent upload` command again: only what is missing is sent."))
                continue
            outcomes.append(self.engine.run(d.id, on_progress))
        return outcomes

    def claimed_ids(self) -> list[int]:
        return list(self._locks)

    def try_claim(self, dataset_id: int) -> bool:
        """Claim unless another process holds the dataset or it belongs to another configuration
        (kept in ``refused`` for the caller to report, and logged)."""
        try:
            self.claim(dataset_id)
        except Busy:
            return False
        except ForeignDataset as exc:
            log.warning("%s. %s", exc.message, exc.hint)
            self.refused.append(exc)
            return False
        return True

    # -- sync sessions --------------------------------------------------------------------------
    def start_sync(self, plan: Plan) -> Dataset:
        """Record a sync session (restored after restarts) and start watching."""
        from .sync import sources_to_json

        dataset = self.record(plan)
        self.queue.save_session(dataset.id, sources_to_json(plan.sources),
                                {"include": list(plan.filters.include), "exclude": list(plan.filters.exclude)})
        self._start_session(dataset, list(plan.sources), plan.filters)
        return dataset

    def restore_syncs(self) -> list[Dataset]:
        """Start again every sync session that was running when the agent stopped or died."""
        from .sync import sources_from_json

        restored = []
        for row in self.queue.sessions("running") + self.queue.sessions("finalize"):
            if row["dataset_id"] in self.sessions or not self.try_claim(row["dataset_id"]):
                continue
            dataset = self.queue.dataset(row["dataset_id"])
            filters = Filters(tuple(row["filters"]["include"]), tuple(row["filters"]["exclude"]))
            self._start_session(dataset, sources_from_json(row["sources"]), filters)
            restored.append(dataset)
        return restored

    def _start_session(self, dataset: Dataset, sources: list[Source], filters: Filters) -> None:
        from .sync import SyncSession

        engine = self.engine
        self.queue.set_dataset(dataset.id, state="active", scan_done=0)
        s = self.cfg.sync
        session = SyncSession(self.queue, dataset, sources, filters, quiet_seconds=float(s.quiet_seconds),
                              polling=bool(s.polling), rescan_seconds=float(s.rescan_minutes) * 60,
                              wake=engine.wake.set)
        self.sessions[dataset.id] = session
        session.start()

    def request_finalize(self, name: str) -> Dataset:
        """Ask for a sync dataset to be finished: done here if no process holds it, else by its owner."""
        rows = [r for r in self.queue.sessions() if self.queue.dataset(r["dataset_id"]).name == name
                and r["state"] in ("running", "stopped", "finalize")]
        if not rows:
            raise ConfigError(f"no sync session for a dataset named {name!r}",
                              "See `trayagent status` for the sessions there are.")
        dataset = self.queue.dataset(rows[-1]["dataset_id"])
        self.queue.update_session(dataset.id, state="finalize")
        if self.try_claim(dataset.id):
            self.restore_syncs()
        return dataset

    def serve_syncs(self, on_complete: Callable[[Outcome], None] | None = None) -> None:
        """Run the sessions until stopped; finalize requests are honoured; returns when every
        session of this process is finalized."""
        def complete(outcome: Outcome) -> None:
            for dataset_id in [i for i in self.sessions if self.queue.dataset(i).state == "complete"]:
                self.sessions.pop(dataset_id)
                self.queue.update_session(dataset_id, state="finalized")
            if on_complete:
                on_complete(outcome)
            if not self.sessions:
                self.stop()
        watcher = threading.Thread(target=self._watch_finalize_requests, daemon=True, name="finalize-requests")
        watcher.start()
        self.engine.serve(lambda: list(self.sessions), on_complete=complete)

    def _watch_finalize_requests(self) -> None:
        engine = self.engine
        while not engine.stop_event.wait(1.0):
            for row in self.queue.sessions("finalize"):
                session = self.sessions.get(row["dataset_id"])
                if session is not None and not session.finalizing:
                    log.info("finalizing sync dataset %r", session.dataset.name)
                    session.finalize()

    def stop_syncs(self) -> None:
        """Clean stop: watching ends, queued files stay queued; sessions resume on next start."""
        for dataset_id, session in list(self.sessions.items()):
            session.stop()
            if self.queue.dataset(dataset_id).state == "active" and not session.finalizing:
                self.queue.update_session(dataset_id, state="running", waiting=session.settler.waiting)
        self.stop()

    def stop(self) -> None:
        if self._engine:
            self._engine.stop()

    # -- reporting ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        datasets = []
        sessions = {row["dataset_id"]: row for row in self.queue.sessions()}
        for d in self.queue.datasets():
            bytes_by_state = self.queue.byte_counts(d.id)
            datasets.append({
                "id": d.id, "name": d.name, "state": d.state, "mode": d.mode,
                "storage": f"{d.storage_url.rstrip('/')}/{d.storage_path}", "catalogue_id": d.catalogue_id,
                "files": self.queue.counts(d.id), "bytes": sum(bytes_by_state.values()),
                "bytes_registered": bytes_by_state.get(State.REGISTERED.value, 0),
                "session": _session_status(sessions[d.id], self.queue.last_registered(d.id))
                if d.id in sessions else None})
        errors = [{"dataset": self.queue.dataset(f.dataset_id).name, "path": f.relpath,
                   "state": f.state, "error": f.last_error} for f in self.queue.recent_errors(10)]
        return {"datasets": datasets, "recent_errors": errors,
                "config": str(self.cfg.source) if self.cfg.source else "embedded default"}


def _session_status(row: dict[str, Any], last_upload: float | None) -> dict[str, Any]:
    return {"state": row["state"], "folders": [s["root"] + (f"/{s['only']}" if s["only"] else "")
                                               for s in row["sources"]],
            "waiting": row["waiting"], "watch": row["watch"], "warning": row["warning"],
            "last_upload": last_upload, "pid": row["pid"]}


def _spec_dict(spec: DatasetSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}
