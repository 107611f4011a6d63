"""The public face of the core: what the CLI (and later the agent and dialogs) call.

It wires configuration to the parts (queue, rclone daemon, transfer, catalogue, engine) and offers
whole operations: plan a dataset, preview it, submit it, run it to the end, report status. Nothing
here knows about terminals, trays or dialogs.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from .catalogue.base import Catalogue, DatasetSpec, StorageLocation
from .catalogue.local import LocalCatalogue
from .config import Config
from .errors import AuthError, CatalogueError, ConfigError, ForeignDataset, StorageError, StorageFull
from .paths import Paths, site_config_file
from .pipeline.engine import Engine, source_paths
from .pipeline.progress import Outcome, Progress, Tuning
from .pipeline.scan import Filters, Source, plan_sources, scan
from .platform.lock import Busy, ProcessLock
from .queue import Dataset, DatasetState, Mode, Queue, Session, State
from .storage.naming import render_root
from .storage.rcerrors import RcError
from .storage.rclone import RcloneDaemon
from .storage.redact import Redactor
from .storage.target import StorageTarget, endpoint_host, launch_rclone, parallel_transfers, storage_target
from .storage.transfer import Transfer
from .sync.sessions import SyncSessions, SyncTiming  # watchdog only once a session starts

if TYPE_CHECKING:
    from .metadata.model import Entry
    from .metadata.templates import Template

log = logging.getLogger(__name__)

FINALIZE_POLL = 30.0  # a running sync also looks for finalize requests this often (a missed ring)


@dataclass(frozen=True)
class Plan:
    """A dataset the user described, resolved: where each source goes."""

    spec: DatasetSpec
    sources: tuple[Source, ...]
    filters: Filters
    storage_path: str
    mode: Mode = Mode.BATCH


def make_catalogue(cfg: Config, paths: Paths) -> Catalogue:
    if cfg.catalogue.kind == "scicat":
        from .catalogue.scicat.catalogue import ScicatCatalogue  # network code only where it is chosen

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
        self._sessions: SyncSessions | None = None
        self._requests_rung = threading.Event()  # another process asked for a session's end, or stop
        self._template: Template | None = None
        self._paused = False  # Pause all; kept here so that a rebuilt pipeline stays paused
        self._watchers: dict[str, Any] = {}  # the engine's callbacks (watch), set again on a rebuilt engine
        self._building = threading.RLock()  # one engine (and one rclone) however many threads ask at once
        self.refused: list[ConfigError] = []  # queued datasets this configuration cannot finish

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sessions is not None:
            self._sessions.close()
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
             include: Sequence[str] = (), exclude: Sequence[str] = (), mode: Mode = Mode.BATCH,
             keywords: Sequence[str] = (), metadata: Mapping[str, Entry] | None = None) -> Plan:
        if not dataset.strip():
            raise ConfigError("the dataset name is empty", "Give the dataset a name.", field="dataset")
        user_metadata = self.user_metadata(metadata or {})
        sources = tuple(plan_sources(paths))
        user = self.cfg.storage.user or getpass.getuser()
        storage_path = render_root(self.cfg.storage.root, dataset=dataset, proposal=proposal, user=user)
        spec = DatasetSpec(
            name=dataset, proposal=proposal, description=description,
            investigation_description=investigation_description, owner=getpass.getuser(),
            creation_location=self.cfg.dataset.creation_location or f"/{socket.gethostname()}",
            source_folders=source_paths(sources), keywords=_keywords(keywords), metadata=user_metadata)
        filters = Filters(tuple(self.cfg.dataset.include) + tuple(include),
                          tuple(self.cfg.dataset.exclude) + tuple(exclude))
        return Plan(spec, sources, filters, storage_path, mode)

    # -- metadata -------------------------------------------------------------------------------
    def template(self) -> Template | None:
        """The beamline template ``[dataset] template`` names (read once), or None."""
        if self._template is None and self.cfg.dataset.template:
            from .metadata.templates import resolve_template

            self._template = resolve_template(self.cfg.dataset.template, self._template_folders())
        return self._template

    def _template_folders(self) -> list[Path]:
        """Where a template's name is looked up: beside the user's and the site's configuration."""
        folders = [self.cfg.source.parent] if self.cfg.source else []
        site = self.cfg.layers.site or site_config_file()  # IT's templates live beside the site file
        return [*folders, self.paths.config_dir, site.parent]

    def metadata_template(self) -> dict[str, Any]:
        """The template as the Dataset dialog renders it."""
        t = self.template()
        if t is None:
            return {"name": None, "title": None, "fields": []}
        return {"name": t.name, "title": t.schema.get("title") or t.name, "fields": t.fields()}

    def user_metadata(self, given: Mapping[str, Entry]) -> dict[str, Entry]:
        """The user's entries with the template's defaults filled in, typed and checked against it
        (``ConfigError`` naming the field at fault)."""
        from .metadata.model import normalise

        entries = normalise(given, "metadata")
        t = self.template()
        if t is None:
            return entries
        merged = t.coerce({**t.defaults(), **entries})
        t.check(merged)
        return merged

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
        """Built on first use: takes the queue lock and starts rclone. Several threads may ask at
        once (a sync session's watcher and the serving loop): one builds, the others wait for it."""
        if self._engine is None:
            with self._building:
                return self._engine or self._build_engine()
        return self._engine

    def _build_engine(self) -> Engine:
        """The pipeline on the configured storage: rclone, the transfer, the engine and its callbacks."""
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
        tuning = Tuning.of(self.cfg.transfer)
        host = target.host or endpoint_host(remote)  # a named remote's endpoint, from its config
        self._engine = Engine(self.queue, transfer, self.catalogue, tuning,
                              lambda path: StorageLocation(target.display, host, path))
        if self.cfg.dataset.harvest:
            from .metadata.harvest import Harvester

            self._engine.registrar.harvester = Harvester(seconds=float(self.cfg.dataset.harvest_seconds),
                                                         max_bytes=int(self.cfg.dataset.harvest_max_bytes))
        for name, callback in self._watchers.items():
            setattr(self._engine.hooks, name, callback)
        if self._paused:
            self._engine.paused.set()
        return self._engine

    def prepare(self) -> None:
        """Build the pipeline now (rclone started, the storage secret read), so that a problem
        shows when a long-lived owner starts rather than at its first upload."""
        self.engine  # noqa: B018 - built on first use

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
            found = dict(self._daemon.call("config/get", {"name": name}))
        except RcError:
            found = {}
        # rclone answers {} for a name it does not know: then every access fails with "didn't find
        # section in config file", which is no outage to wait out but a setting to fix
        if not found and not os.environ.get(f"RCLONE_CONFIG_{name.upper().replace('-', '_')}_TYPE"):
            raise self.unknown_remote(name)
        return found

    def unknown_remote(self, name: str) -> ConfigError:
        """The storage names an rclone remote that rclone's configuration does not hold."""
        where = self.rclone_config_file()
        return ConfigError(f"the storage remote {name!r} is not in rclone's configuration"
                           + (f" ({where})" if where else ""),
                           f"Add it with `rclone config` (a remote named {name}), or fix [storage] remote in "
                           "Settings.", field="storage.remote")

    def rclone_config_file(self) -> str:
        """The rclone configuration file the running rclone reads ('' if it cannot say)."""
        if self.cfg.storage.rclone_config:
            return str(Path(self.cfg.storage.rclone_config).expanduser())
        try:
            self.launch_rclone()
            assert self._daemon is not None
            return str(self._daemon.call("config/paths", {}).get("config") or "")
        except (RcError, StorageError):
            return ""

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
        origin = (f"the configuration file {dataset.config}" if dataset.config
                  else "the default configuration")
        raise ForeignDataset(
            f"dataset {dataset.name!r} was queued with {origin} for {' and '.join(moved)}; "
            "it is not moved to another storage or catalogue",
            f"Finish it with {origin}.", dataset.config)

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
        for d in self.queue.datasets(DatasetState.ACTIVE):
            if d.mode != Mode.BATCH or not self.try_claim(d.id):
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

    # -- sync sessions (bookkeeping in sync/sessions.py) ---------------------------------------
    @property
    def sessions(self) -> SyncSessions:
        if self._sessions is None:
            s = self.cfg.sync
            timing = SyncTiming(quiet_seconds=float(s.quiet_seconds), polling=bool(s.polling),
                                rescan_seconds=float(s.rescan_minutes) * 60)
            self._sessions = SyncSessions(self.queue, timing, self.try_claim)
        return self._sessions

    def start_sync(self, plan: Plan) -> Dataset:
        """Record a sync session (restored after restarts) and start watching."""
        dataset = self.record(plan)
        self.sessions.start(dataset, plan.sources, plan.filters, self.wake)
        return dataset

    def restore_syncs(self) -> list[Dataset]:
        """Start again every sync session that was running when the agent stopped or died."""
        return self.sessions.restore(self.wake)

    def request_finalize(self, name: str) -> Dataset:
        """Ask for a sync dataset to be finished: done here if no process holds it, else by its owner."""
        dataset = self.sessions.request_finalize(name)
        if self.try_claim(dataset.id):
            self.restore_syncs()
        return dataset

    def syncing(self) -> list[tuple[int, str]]:
        """(dataset id, name) of the sync sessions this process runs."""
        return self.sessions.names() if self._sessions is not None else []

    def stop_sync(self, dataset_id: int) -> bool:
        return self.sessions.stop_one(dataset_id)

    def finalize_sync(self, dataset_id: int) -> bool:
        return self.sessions.finalize(dataset_id)

    def gone_folders(self) -> set[str]:
        return self.sessions.gone_folders() if self._sessions is not None else set()

    def retire_completed_syncs(self) -> None:
        if self._sessions is not None:
            self.sessions.retire_completed()

    def serve_syncs(self, on_complete: Callable[[Outcome], None] | None = None) -> None:
        """Run the sessions until stopped; finalize requests are honoured; returns when every
        session of this process is finalized."""
        def complete(outcome: Outcome) -> None:
            self.sessions.retire_completed()
            if on_complete:
                on_complete(outcome)
            if not self.sessions:
                self.stop()
        watcher = threading.Thread(target=self._watch_finalize_requests, daemon=True, name="finalize-requests")
        watcher.start()
        self.engine.serve(self.sessions.ids, on_complete=complete)

    def _watch_finalize_requests(self) -> None:
        """Another process asks for a session's end in the queue database and rings (see
        ``SyncSessions.watch_requests``): this thread sleeps until then, or until the engine stops,
        and looks every ``FINALIZE_POLL`` seconds as well (every second without a watch)."""
        engine, rung = self.engine, self._requests_rung
        stop_watch = self.sessions.watch_requests(rung.set)
        try:
            while not engine.stop_event.is_set():
                self.sessions.honour_finalize_requests()
                rung.wait(FINALIZE_POLL if stop_watch else 1.0)
                rung.clear()
        finally:
            if stop_watch is not None:
                stop_watch()

    def stop_syncs(self) -> None:
        """Clean stop: watching ends, queued files stay queued; sessions resume on next start."""
        if self._sessions is not None:
            self.sessions.stop_all()
        self.stop()

    def stop(self) -> None:
        self._requests_rung.set()  # the finalize-request watcher sees the stop
        if self._engine:
            self._engine.stop()

    # -- the engine, for a long-lived owner (the agent) -----------------------------------------
    def watch(self, *, on_failure: Callable[[Dataset, str], None] | None = None,
              on_login_needed: Callable[[], None] | None = None,
              on_storage_full: Callable[[StorageFull], None] | None = None,
              on_catalogue_refused: Callable[[CatalogueError], None] | None = None) -> None:
        """What the owner hears of: a file that failed, a catalogue login needed, a full storage
        (uploads pause and are tried again), a catalogue refusal (uploads go on, registration waits).
        Kept, and given to every engine built from now on (a new password or Settings rebuild it);
        builds nothing itself, so it works while the storage has no password yet."""
        if on_failure is not None:
            self._watchers["on_failure"] = lambda dataset, f, reason: on_failure(dataset, reason)
        if on_login_needed is not None:
            self._watchers["on_login_needed"] = on_login_needed
        if on_storage_full is not None:
            self._watchers["on_storage_full"] = on_storage_full
        if on_catalogue_refused is not None:
            self._watchers["on_catalogue_refused"] = on_catalogue_refused
        for name, callback in self._watchers.items():
            if self._engine is not None:
                setattr(self._engine.hooks, name, callback)

    def serve(self, dataset_ids: Callable[[], list[int]], on_complete: Callable[[Outcome], None],
              on_progress: Callable[[Progress], None] | None = None) -> None:
        """Work on ``dataset_ids()`` until ``stop``. May be called again after it raised, or after
        ``reload_storage`` / ``reconfigure`` (the pipeline is then rebuilt)."""
        engine = self.engine
        engine.stop_event.clear()
        try:
            engine.serve(dataset_ids, on_complete=on_complete, on_progress=on_progress)
        except StorageError as exc:  # the remote left rclone's configuration since the pipeline was built
            head = self.target(need_secret=False).remote.head
            if "didn't find section in config file" in exc.message and not head.startswith(":"):
                raise self.unknown_remote(head.split(",")[0]) from exc
            raise

    def wake(self) -> None:
        """Work arrived (a sync session saw a file, a retry was asked for): the engine looks now.
        A no-op while no pipeline is built, e.g. while the storage refuses the password."""
        if self._engine is not None:
            self._engine.wake.set()

    def reload_storage(self) -> bool:
        """Read the storage secret from the keyring again; if it changed (a new login), drop the
        pipeline built on the old one so the next use rebuilds it. Call only while ``serve`` is not
        running. Returns whether anything changed. Raises AuthError while no secret is stored."""
        fresh = storage_target(self.cfg, self.paths, need_secret=True)
        if self._target is not None and fresh == self._target:
            return False
        self._drop_pipeline()
        self._target = fresh
        if fresh.secret:
            self.redactor.add(fresh.secret)
        return True

    def reconfigure(self, cfg: Config) -> None:
        """Apply a changed configuration without a restart: storage, catalogue and transfer settings
        take effect for the next batch (the pipeline is rebuilt); running sync sessions keep their
        timing until they are started again. Call only while ``serve`` is not running."""
        self._drop_pipeline()
        self._target = None
        self._template = None  # [dataset] template may name another one now
        self.cfg = cfg
        self.catalogue.close()
        self.catalogue = make_catalogue(cfg, self.paths)
        if self._daemon is not None:
            self._daemon.set_bwlimit(str(cfg.transfer.bwlimit or ""))
        self._reclaim()

    def _reclaim(self) -> None:
        """After a change of storage or catalogue: datasets defined for the old ones are let go (they
        stay queued and are finished where they were defined, never moved), and batch datasets that
        belong here (e.g. after changing back) are taken up again."""
        for dataset_id in list(self._locks):
            dataset = self.queue.dataset(dataset_id)
            try:
                self._check_home(dataset)
            except ForeignDataset as exc:
                log.warning("%s. %s", exc.message, exc.hint)
                self._locks.pop(dataset_id).release()
        self.refused.clear()  # said again (logged) by resume_batches for what stays foreign
        self.resume_batches()

    def stored_storage_secret(self, cfg: Config) -> str | None:
        """The keyring's password for the storage ``cfg`` names (None if none is stored)."""
        try:
            return storage_target(cfg, self.paths, need_secret=True).secret
        except AuthError:
            return None

    def _drop_pipeline(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def check_storage(self, cfg: Config, secret: str | None) -> dict[str, Any]:
        """Reach the storage ``cfg`` describes with ``secret`` (not the running pipeline's, not the
        keyring's): Settings' Test connection and the storage login test what the user typed.
        Raises AuthError (refused), StorageError (unreachable) or ConfigError (no such remote)."""
        self.launch_rclone()
        assert self._daemon is not None
        target = storage_target(cfg, self.paths, need_secret=False)
        if secret:
            self.redactor.add(secret)
            target = replace(target, secret=secret)
        remote = self._remote_config(target)
        transfer = Transfer(self._daemon, target, transfers=1, scratch_dir=self.paths.runtime_dir,
                            backend_type=str(remote.get("type", "")), preset=frozenset(remote))
        transfer.probe()
        return {"storage": target.display, "hashes": transfer.hash_types()}

    def preflight(self) -> None:
        """Raise now a catalogue refusal certain to come, before anything is sent."""
        self.catalogue.preflight()

    def warn_syncs(self, message: str) -> None:
        """A warning every running sync session shows (``status``, the agent)."""
        if self._sessions is not None:
            self.sessions.warn_all(message)

    def resume_batches(self) -> list[Dataset]:
        """Claim the batch datasets an earlier process left active (those no other process holds)."""
        return [d for d in self.queue.datasets(DatasetState.ACTIVE)
                if d.mode == Mode.BATCH and self.try_claim(d.id)]

    def enqueue(self, dataset: Dataset, plan: Plan, errors: list[str] | None = None) -> None:
        self.engine.enqueue(dataset, plan.sources, plan.filters, errors)

    def resume_catalogue(self) -> None:
        """After a login: registration resumes at once."""
        self.engine.resume_catalogue()

    @property
    def waiting(self) -> str | None:
        """Why the engine waits (storage unreachable...), if it does."""
        return self._engine.waiting if self._engine else None

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self, paused: bool) -> None:
        """Pause all: no new batches (the one in flight finishes)."""
        self._paused = paused
        if self._engine is not None:
            (self._engine.paused.set if paused else self._engine.paused.clear)()
            self._engine.wake.set()

    def cancel(self, dataset_id: int) -> int:
        """The user's Cancel: a sync session of the dataset stops watching, files not yet sent leave the
        queue, the dataset is ``cancelled`` and let go (a batch in flight ends; what reached storage and
        the catalogue stays). An upload of it later starts it again. Returns the files dropped."""
        if self._sessions is not None and dataset_id in self._sessions:
            self._sessions.stop_one(dataset_id)
        dropped = self.queue.cancel(dataset_id)
        if (lock := self._locks.pop(dataset_id, None)) is not None:
            lock.release()
        self.wake()
        log.info("dataset %r cancelled: %d files not yet sent left the queue",
                 self.queue.dataset(dataset_id).name, dropped)
        return dropped

    def retry_failed(self, dataset_id: int) -> int:
        """Failed files of the dataset go back to the queue; the dataset becomes active again."""
        n = self.queue.retry_failed(dataset_id)
        if self.queue.dataset(dataset_id).state != DatasetState.ACTIVE:
            self.queue.set_dataset(dataset_id, state=DatasetState.ACTIVE)
            self.try_claim(dataset_id)
        self.wake()
        return n

    def retry_now(self, dataset_id: int | None = None) -> int:
        """Files waiting for a retry slot (of one dataset, or all) are due now; the engine looks at once.
        A wait for an unreachable storage ends only with ``stop`` (the agent then serves again)."""
        n = self.queue.retry_now(dataset_id)
        self.wake()
        return n

    def set_bwlimit(self, rate: str) -> None:
        """rclone's bandwidth limit, changed at run time."""
        self.launch_rclone()
        assert self._daemon is not None
        self._daemon.set_bwlimit(rate)

    def test_storage(self) -> dict[str, Any]:
        """Reach the storage and list it; raises what went wrong."""
        transfer = self.engine.transfer
        transfer.probe()
        return {"storage": transfer.target.display, "hashes": transfer.hash_types()}

    def lookup_proposal(self, proposal_id: str) -> dict[str, str]:
        return self.catalogue.lookup_proposal(proposal_id)

    # -- reading the queue ----------------------------------------------------------------------
    def dataset(self, dataset_id: int) -> Dataset:
        """The dataset; QueueError if there is none with this id."""
        return self.queue.dataset(dataset_id)

    def datasets(self, state: DatasetState | None = None) -> list[Dataset]:
        return self.queue.datasets(state)

    def served_ids(self) -> list[int]:
        """The active datasets this process holds."""
        return [i for i in self.claimed_ids() if self.queue.dataset(i).state == DatasetState.ACTIVE]

    def in_flight(self) -> int:
        """Files of the datasets this process holds that are not yet done."""
        busy = (State.PENDING, State.UPLOADING, State.VERIFIED)
        return sum(self.queue.counts(i)[s.value] for i in self.served_ids() for s in busy)

    def file_counts(self, dataset_id: int) -> dict[str, int]:
        """Files of the dataset per state (every state present, 0 where none)."""
        return self.queue.counts(dataset_id)

    def registered_bytes(self, dataset_id: int) -> int:
        return self.queue.byte_counts(dataset_id).get(State.REGISTERED.value, 0)

    def activity(self, d: Dataset) -> dict[str, Any]:
        """A dataset as Activity and a following CLI see it (the agent adds the rate)."""
        counts, sizes = self.queue.counts(d.id), self.queue.byte_counts(d.id)
        return {
            "id": d.id, "name": d.name, "mode": d.mode, "state": d.state, "storage_path": d.storage_path,
            "catalogue_id": d.catalogue_id, "files": counts, "files_total": sum(counts.values()),
            "bytes_total": sum(sizes.values()), "bytes_done": sizes.get(State.REGISTERED.value, 0),
            "syncing": self._sessions is not None and d.id in self._sessions,
            "recent": [f.relpath for f in self.queue.recent_files(d.id, 8)],
            "errors": [{"path": f.relpath, "reason": f.last_error or ""}
                       for f in self.queue.files(d.id, State.FAILED)[:50]]}

    # -- reporting ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        datasets = []
        sessions = {row.dataset_id: row for row in self.queue.sessions()}
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


def _session_status(row: Session, last_upload: float | None) -> dict[str, Any]:
    return {"state": row.state, "folders": [s["root"] + (f"/{s['only']}" if s["only"] else "")
                                            for s in row.sources],
            "waiting": row.waiting, "watch": row.watch, "warning": row.warning,
            "last_upload": last_upload, "pid": row.pid}


def _keywords(given: Sequence[str]) -> tuple[str, ...]:
    """Keywords as given, trimmed, each once, in order."""
    return tuple(dict.fromkeys(k.strip() for k in given if isinstance(k, str) and k.strip()))


def _spec_dict(spec: DatasetSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}
