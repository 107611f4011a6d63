"""The agent: one per user, it owns the queue, the engine, the sync sessions and the control API.

It is UI-free and works through the ``Uploader`` facade only. The tray icon and the dialogs are thin
clients: the tray calls the agent's methods in-process; dialogs run in their own processes and speak
the control API (routes.py, typed against the small protocol it needs). The agent
turns engine events into notifications, keeps per-dataset rates for Activity, and survives any
single failure (a bad request, a storage outage, a wrong password) without stopping.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..config import Config, load_config
from ..errors import AuthError, ConfigError
from ..icons import app_icon
from ..paths import Paths
from ..pipeline.progress import Outcome
from ..platform.autostart import autostart
from ..platform.lock import ProcessLock
from ..queue import Dataset, DatasetState, Mode, QueueError
from ..storage.redact import Redactor
from ..uploader import Plan, Uploader
from .notify import Notifications, PlyerSender, Sender
from .routes import register_routes
from .server import ApiError, ControlServer

log = logging.getLogger(__name__)

OpenDialog = Callable[[str, dict[str, Any]], None]


class Agent:
    def __init__(self, cfg: Config, paths: Paths, redactor: Redactor | None = None,
                 send: Sender | None = None, open_dialog: OpenDialog | None = None) -> None:
        self.cfg = cfg
        self.paths = paths.ensure()
        self.uploader = Uploader(cfg, paths, redactor)
        self.notes = Notifications(send or PlyerSender(app_icon()))
        self.server = ControlServer(paths.runtime_dir)
        self.open_dialog: OpenDialog = open_dialog or (lambda name, params: None)
        self.problem: str | None = None     # shown by the tray as the error state
        self.login_needed = False           # the catalogue session expired: tray shows logged-out
        self.on_change: Callable[[], None] = lambda: None  # the tray refreshes its icon and menu
        self._lock = ProcessLock(paths.runtime_dir / "agent.lock")
        self._stopped = threading.Event()   # stop requested: the loops end
        self._closed = threading.Event()    # stop done: wait() returns
        self._stop_lock = threading.Lock()
        self._retry_engine = threading.Event()
        self._rates: dict[int, collections.deque[tuple[float, int]]] = {}
        self._completions = threading.Condition()  # notified when a dataset completes: ends wait_dataset
        self._started = time.monotonic()
        self.dialog_requests: dict[str, dict[str, Any]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Take the per-user lock (Busy if another agent runs), resume work, open the API."""
        self._lock.acquire()
        self.uploader.prepare()
        self.uploader.watch(on_failure=lambda dataset, reason: self.notes.file_failed(dataset.name, reason),
                            on_login_needed=self._login_needed,
                            on_storage_full=lambda exc: self.notes.storage_full(exc.message),  # pause, not stop
                            on_catalogue_refused=lambda exc: self.notes.catalogue_refused(str(exc)))  # uploads go on
        self.uploader.restore_syncs()
        for dataset in self.uploader.resume_batches():
            log.info("resuming dataset %r", dataset.name)
        for refusal in self.uploader.refused:  # queued under another configuration: said, not moved
            self.notes.queued_elsewhere(str(refusal))
        register_routes(self.server, self)
        self.server.start()
        threading.Thread(target=self._engine_loop, name="engine", daemon=True).start()
        threading.Thread(target=self._housekeeping, name="agent-housekeeping", daemon=True).start()
        log.info("agent %s started (pid lock %s)", __version__, self._lock.path)

    def stop(self) -> None:
        """Clean stop: watching ends, the batch in flight finishes, queued work stays queued.
        Returns once all is closed, also to a second caller (a signal handler's thread and the
        tray can both ask): whoever then ends the process cuts nothing short."""
        with self._stop_lock:
            if self._closed.is_set():
                return
            self._stopped.set()
            self.uploader.stop_syncs()
            self.server.stop()
            self.uploader.close()
            self._lock.release()
            self._closed.set()

    def wait(self) -> None:
        """Block until stopped and closed. In slices: a signal that the kernel delivers to another
        thread runs its Python handler (SIGTERM -> stop) only once the main thread runs again, which
        an untimed wait never does (seen: a headless agent ignoring SIGTERM)."""
        while not self._closed.is_set():
            self._closed.wait(0.5)

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    def _engine_loop(self) -> None:
        """The engine runs until the agent stops; a refused password waits for a new login."""
        while not self._stopped.is_set():
            try:
                self.uploader.serve(self.uploader.served_ids, on_complete=self._completed)
                return
            except AuthError as exc:
                self.problem = exc.message
                self.notes.login_needed("storage")
                log.error("uploads paused: %s", exc)
            except Exception:
                log.exception("engine error; retrying in 10 s")
                self.problem = "internal error; see the log"
            self.on_change()
            self._retry_engine.wait(10)
            self._retry_engine.clear()

    def _login_needed(self) -> None:
        if not self.login_needed:
            self.login_needed = True
            self.notes.login_needed("catalogue")
            self.on_change()

    def logged_in(self) -> None:
        """After a login: registration resumes at once."""
        self.login_needed = False
        self.notes.logged_in("catalogue")
        self.uploader.resume_catalogue()
        self.on_change()

    def _completed(self, outcome: Outcome) -> None:
        self.uploader.retire_completed_syncs()
        with self._completions:  # first: a CLI waiting for this dataset returns at once
            self._completions.notify_all()
        self.notes.dataset_complete(outcome.dataset, outcome.files_ok, outcome.files_failed,
                                    outcome.bytes, outcome.seconds)
        self.on_change()

    def _housekeeping(self) -> None:
        """Aggregated notices, storage-unreachable watch, watched-folder warnings, rate samples."""
        gone: set[str] = set()
        while not self._stopped.wait(1.0):
            self.notes.flush()
            waiting = self.uploader.waiting or ""
            full = "full or over its quota" in waiting  # told by on_storage_full, not as unreachable
            self.notes.storage_state("storage" not in waiting or full, waiting)
            if not full:
                self.notes.storage_has_room()
            now_gone = self.uploader.gone_folders()
            for folder in now_gone - gone:
                self.notes.folder_gone(folder)
            for folder in gone - now_gone:
                self.notes.folder_back(folder)
            gone = now_gone
            for dataset_id in self.uploader.served_ids():
                done = self.uploader.registered_bytes(dataset_id)
                self._rates.setdefault(dataset_id, collections.deque(maxlen=30)).append((time.monotonic(), done))
            self.on_change()

    # -- actions (the API and the tray call these) ----------------------------------------------
    def plan_from(self, body: dict[str, Any], mode: Mode) -> Plan:
        paths = body.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ConfigError("paths must be a list of folder or file paths", "Choose at least one folder.")
        return self.uploader.plan(paths, dataset=str(body.get("dataset") or ""), proposal=body.get("proposal") or None,
                                  description=body.get("description") or None,
                                  investigation_description=body.get("investigation_description") or None,
                                  include=list(body.get("include") or []), exclude=list(body.get("exclude") or []),
                                  mode=mode, **_metadata_of(body))

    def upload(self, body: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan_from(body, Mode.BATCH)
        dataset = self.uploader.record(plan)
        threading.Thread(target=self._enqueue, args=(dataset, plan), name="scan", daemon=True).start()
        return {"dataset_id": dataset.id, "storage_path": dataset.storage_path}

    def _enqueue(self, dataset: Dataset, plan: Plan) -> None:
        errors: list[str] = []
        self.uploader.enqueue(dataset, plan, errors)
        for problem in errors:
            self.notes.file_failed(dataset.name, problem)

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self.uploader.start_sync(self.plan_from(body, Mode.SYNC))
        self.on_change()
        return {"dataset_id": dataset.id, "storage_path": dataset.storage_path}

    def preview(self, body: dict[str, Any], limit: int = 500) -> dict[str, Any]:
        plan = self.plan_from(body, Mode(body.get("mode") or Mode.BATCH))
        errors: list[str] = []
        files: list[dict[str, Any]] = []
        count = size = 0
        for local, remote, nbytes in self.uploader.preview(plan, errors):
            count, size = count + 1, size + nbytes
            if len(files) < limit:
                files.append({"local": local, "remote": remote, "size": nbytes})
        return {"storage_path": plan.storage_path, "files": files, "count": count, "bytes": size,
                "errors": errors[:50]}

    def dataset_action(self, dataset_id: int, action: str) -> dict[str, Any]:
        dataset = self.uploader.dataset(dataset_id)
        if action == "retry":
            return {"retried": self.uploader.retry_failed(dataset_id)}
        act = {"stop": self.uploader.stop_sync, "finalize": self.uploader.finalize_sync}[action]
        if not act(dataset_id):
            raise ApiError(409, f"{dataset.name} has no running sync session")
        self.on_change()
        return {"ok": True}

    def pause(self, paused: bool) -> None:
        self.uploader.pause(paused)
        self.on_change()

    def in_flight(self) -> int:
        return self.uploader.in_flight()

    @property
    def paused(self) -> bool:
        return self.uploader.paused

    def syncing(self) -> list[tuple[int, str]]:
        """(dataset id, name) of the running sync sessions."""
        return self.uploader.syncing()

    def request_dialog(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Open a dialog process; its parameters wait under a one-time request id it fetches."""
        request = new_request_id()
        self.dialog_requests[request] = {"dialog": name, **params}
        self.open_dialog(name, {"request": request, **params})
        return {"dialog": name, "request": request}

    def dialog_request(self, request: str) -> dict[str, Any]:
        """The parameters a dialog was opened with ({} for an unknown request)."""
        return self.dialog_requests.get(request, {})

    # -- settings -------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {"settings": self.cfg.as_dict(), "autostart": autostart().enabled(),
                "config_file": str(self.cfg.source or self.paths.config_file),
                "locked": sorted(self.cfg.locked), "site_file": str(self.cfg.layers.site or "")}

    def save_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and write config.toml; storage and transfer changes apply on the next start
        (the bandwidth limit at once)."""
        from ..configfile import save_settings

        sections = body.get("settings") or {}
        path = save_settings(self.cfg, self.paths, sections)  # keeps the file's comments; refuses locked keys
        if "autostart" in body:
            autostart().set(bool(body["autostart"]))
        if bwlimit := sections.get("transfer", {}).get("bwlimit"):
            self.uploader.set_bwlimit(str(bwlimit))
        self.cfg = load_config(self.paths, path)
        return {"saved": str(path), "restart_needed": True}

    def test_connection(self) -> dict[str, Any]:
        """The Settings dialog's Test: reach the storage; a failure is the answer, not an error."""
        try:
            return {"ok": True, **self.uploader.test_storage()}
        except Exception as exc:  # noqa: BLE001 - reported to the user as the test result
            return {"ok": False, "error": str(exc)}

    # -- the catalogue --------------------------------------------------------------------------
    @property
    def catalogue_kind(self) -> str:
        return str(self.cfg.catalogue.kind)

    def lookup_proposal(self, proposal_id: str) -> dict[str, str]:
        return self.uploader.lookup_proposal(proposal_id)

    def metadata_template(self) -> dict[str, Any]:
        return self.uploader.metadata_template()

    def login(self, user: str | None, password: str | None, token: str | None) -> dict[str, Any]:
        """Catalogue login from the Login dialog: password or a token copied from SciCat."""
        from ..catalogue.scicat.auth import login_catalogue

        try:
            ident = login_catalogue(self.cfg, user, password=password, token=token)
        except AuthError as exc:
            raise ApiError(401, exc.message, exc.hint) from None
        self.logged_in()
        return {"user": ident.username, "email": ident.email, "name": ident.display_name,
                "groups": list(ident.groups)}

    def logout(self) -> bool:
        """Log out of the catalogue (tray menu); registration then waits for the next login."""
        from ..catalogue.scicat.auth import logout_catalogue

        removed = logout_catalogue(self.cfg)
        self.login_needed = self.cfg.catalogue.kind == "scicat"
        self.on_change()
        return removed

    # -- reporting ------------------------------------------------------------------------------
    def state(self) -> str:
        """The tray's icon: error, paused, syncing, or idle."""
        if self.problem:
            return "error"
        if self.login_needed:
            return "logged-out"
        if self.uploader.paused:
            return "paused"
        return "syncing" if self.uploader.syncing() or self.in_flight() else "idle"

    def wait_dataset(self, dataset_id: int, timeout: float) -> dict[str, Any]:
        """The dataset's activity entry once it is complete, or after ``timeout`` seconds (at most
        60): a CLI following its upload hears of the end at once instead of at its next poll."""
        deadline = time.monotonic() + min(max(timeout, 0.0), 60.0)
        with self._completions:
            while (left := deadline - time.monotonic()) > 0 and self.running and \
                    self.uploader.dataset(dataset_id).state != DatasetState.COMPLETE:
                self._completions.wait(min(left, 1.0))  # 1 s: a dataset completed by a restart is seen too
        return self.dataset_entry(dataset_id)

    def has_dataset(self, dataset_id: int) -> bool:
        try:
            self.uploader.dataset(dataset_id)
        except QueueError:
            return False
        return True

    def dataset_entry(self, dataset_id: int) -> dict[str, Any]:
        return self._entry(self.uploader.dataset(dataset_id))

    def activity(self) -> list[dict[str, Any]]:
        return [self._entry(d) for d in reversed(self.uploader.datasets()[-20:])]

    def _entry(self, d: Dataset) -> dict[str, Any]:
        entry = self.uploader.activity(d)
        rate = self._rate(d.id)
        left = entry["bytes_total"] - entry["bytes_done"]
        entry.update(rate=rate, eta=left / rate if rate > 0 else None)
        return entry

    def _rate(self, dataset_id: int) -> float:
        samples = self._rates.get(dataset_id)
        if not samples or len(samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = samples[0], samples[-1]
        return max(b1 - b0, 0) / (t1 - t0) if t1 > t0 else 0.0

    def status(self) -> dict[str, Any]:
        status = self.uploader.status()
        status.update(agent={"pid": os.getpid(), "version": __version__,
                             "state": self.state(), "problem": self.problem,
                             "paused": self.uploader.paused,
                             "login_needed": self.login_needed, "catalogue": self.cfg.catalogue.kind,
                             "waiting": self.uploader.waiting},
                      activity=self.activity())
        return status


def _metadata_of(body: dict[str, Any]) -> dict[str, Any]:
    """``keywords`` (a list of text) and ``metadata`` (an object of entries) of a request."""
    keywords, metadata = body.get("keywords") or [], body.get("metadata") or {}
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ConfigError("keywords must be a list of text", "Give each keyword as text.", field="metadata")
    if not isinstance(metadata, dict):
        raise ConfigError("metadata must be an object of named entries",
                          'Send e.g. {"energy": {"value": 12.4, "unit": "keV"}}.', field="metadata")
    return {"keywords": keywords, "metadata": metadata}


def new_request_id() -> str:
    """A one-time dialog request id. Hex, because it travels as `dialog NAME --request ID`: a
    urlsafe token starting with '-' would be read by argparse as an option."""
    return secrets.token_hex(8)
