"""The agent: one per user, it owns the queue, the engine, the sync sessions and the control API.

It is UI-free. The tray icon and the dialogs are thin clients: the tray calls the agent in-process
through ``AgentActions``; dialogs run in their own processes and speak the control API. The agent
turns engine events into notifications, keeps per-dataset rates for Activity, and survives any
single failure (a bad request, a storage outage, a wrong password) without stopping.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import __version__
from .api import ApiError, ControlServer
from .config import Config
from .engine import Outcome
from .errors import AuthError, ConfigError
from .lock import ProcessLock
from .notify import Notifications, PlyerSender, Sender
from .paths import Paths
from .queue import Dataset, State
from .rclone import Redactor
from .uploader import Uploader

log = logging.getLogger(__name__)

OpenDialog = Callable[[str, dict[str, Any]], None]


class Agent:
    def __init__(self, cfg: Config, paths: Paths, redactor: Redactor | None = None,
                 send: Sender | None = None, open_dialog: OpenDialog | None = None) -> None:
        self.cfg = cfg
        self.paths = paths.ensure()
        self.uploader = Uploader(cfg, paths, redactor)
        self.notes = Notifications(send or PlyerSender(_app_icon()))
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
        engine = self.uploader.engine
        engine.on_failure = lambda dataset, f, reason: self.notes.file_failed(dataset.name, reason)
        engine.on_login_needed = self._login_needed
        engine.on_storage_full = lambda exc: self.notes.storage_full(exc.message)  # pause, not stop
        engine.on_catalogue_refused = lambda exc: self.notes.catalogue_refused(str(exc))  # uploads go on
        self.uploader.restore_syncs()
        for dataset in self.uploader.queue.datasets("active"):
            if dataset.mode == "batch" and self.uploader.try_claim(dataset.id):
                log.info("resuming dataset %r", dataset.name)
        for refusal in self.uploader.refused:  # queued under another configuration: said, not moved
            self.notes.queued_elsewhere(str(refusal))
        from .agent_routes import register_routes

        register_routes(self)
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

    def served_ids(self) -> list[int]:
        q = self.uploader.queue
        return [i for i in self.uploader.claimed_ids() if q.dataset(i).state == "active"]

    def _engine_loop(self) -> None:
        """The engine runs until the agent stops; a refused password waits for a new login."""
        engine = self.uploader.engine
        while not self._stopped.is_set():
            try:
                engine.stop_event.clear()
                engine.serve(self.served_ids, on_complete=self._completed)
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
        self.uploader.engine.resume_catalogue()
        self.on_change()

    def _completed(self, outcome: Outcome) -> None:
        for dataset_id, session in list(self.uploader.sessions.items()):
            if self.uploader.queue.dataset(dataset_id).state == "complete":
                self.uploader.sessions.pop(dataset_id)
                self.uploader.queue.update_session(dataset_id, state="finalized")
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
            waiting = self.uploader.engine.waiting or ""
            full = "full or over its quota" in waiting  # told by on_storage_full, not as unreachable
            self.notes.storage_state("storage" not in waiting or full, waiting)
            if not full:
                self.notes.storage_has_room()
            now_gone = {str(r) for s in list(self.uploader.sessions.values()) for r in s.gone}
            for folder in now_gone - gone:
                self.notes.folder_gone(folder)
            for folder in gone - now_gone:
                self.notes.folder_back(folder)
            gone = now_gone
            for dataset_id in self.served_ids():
                done = self.uploader.queue.byte_counts(dataset_id).get(State.REGISTERED.value, 0)
                self._rates.setdefault(dataset_id, collections.deque(maxlen=30)).append((time.monotonic(), done))
            self.on_change()

    # -- actions (the API and the tray call these) ----------------------------------------------
    def plan_from(self, body: dict[str, Any], mode: str) -> Any:
        paths = body.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ConfigError("paths must be a list of folder or file paths", "Choose at least one folder.")
        return self.uploader.plan(paths, dataset=str(body.get("dataset") or ""), proposal=body.get("proposal") or None,
                                  description=body.get("description") or None,
                                  investigation_description=body.get("investigation_description") or None,
                                  include=list(body.get("include") or []), exclude=list(body.get("exclude") or []),
                                  mode=mode)

    def upload(self, body: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan_from(body, "batch")
        dataset = self.uploader.record(plan)
        threading.Thread(target=self._enqueue, args=(dataset, plan), name="scan", daemon=True).start()
        return {"dataset_id": dataset.id, "storage_path": dataset.storage_path}

    def _enqueue(self, dataset: Any, plan: Any) -> None:
        errors: list[str] = []
        self.uploader.engine.enqueue(dataset, plan.sources, plan.filters, errors)
        for problem in errors:
            self.notes.file_failed(dataset.name, problem)

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self.uploader.start_sync(self.plan_from(body, "sync"))
        self.on_change()
        return {"dataset_id": dataset.id, "storage_path": dataset.storage_path}

    def preview(self, body: dict[str, Any], limit: int = 500) -> dict[str, Any]:
        plan = self.plan_from(body, str(body.get("mode") or "batch"))
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
        q = self.uploader.queue
        dataset = q.dataset(dataset_id)
        if action == "retry":
            n = q.retry_failed(dataset_id)
            if dataset.state != "active":
                q.set_dataset(dataset_id, state="active")
                self.uploader.try_claim(dataset_id)
            self.uploader.engine.wake.set()
            return {"retried": n}
        session = self.uploader.sessions.get(dataset_id)
        if session is None:
            raise ApiError(409, f"{dataset.name} has no running sync session")
        if action == "stop":
            session.stop()
            self.uploader.sessions.pop(dataset_id)
            q.update_session(dataset_id, state="stopped")
        elif action == "finalize":
            threading.Thread(target=session.finalize, name="finalize", daemon=True).start()
        self.on_change()
        return {"ok": True}

    def pause(self, paused: bool) -> None:
        (self.uploader.engine.paused.set if paused else self.uploader.engine.paused.clear)()
        self.uploader.engine.wake.set()
        self.on_change()

    def in_flight(self) -> int:
        q = self.uploader.queue
        busy = (State.PENDING, State.UPLOADING, State.VERIFIED)
        return sum(q.counts(i)[s.value] for i in self.served_ids() for s in busy)

    def request_dialog(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Open a dialog process; its parameters wait under a one-time request id it fetches."""
        request = new_request_id()
        self.dialog_requests[request] = {"dialog": name, **params}
        self.open_dialog(name, {"request": request, **params})
        return {"dialog": name, "request": request}

    def logout(self) -> bool:
        """Log out of the catalogue (tray menu); registration then waits for the next login."""
        from .auth import logout_catalogue

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
        if self.uploader.engine.paused.is_set():
            return "paused"
        return "syncing" if self.uploader.sessions or self.in_flight() else "idle"

    def wait_dataset(self, dataset_id: int, timeout: float) -> dict[str, Any]:
        """The dataset's activity entry once it is complete, or after ``timeout`` seconds (at most
        60): a CLI following its upload hears of the end at once instead of at its next poll."""
        deadline = time.monotonic() + min(max(timeout, 0.0), 60.0)
        with self._completions:
            while (left := deadline - time.monotonic()) > 0 and self.running and \
                    self.uploader.queue.dataset(dataset_id).state != "complete":
                self._completions.wait(min(left, 1.0))  # 1 s: a dataset completed by a restart is seen too
        return self.dataset_entry(dataset_id)

    def dataset_entry(self, dataset_id: int) -> dict[str, Any]:
        return self._entry(self.uploader.queue.dataset(dataset_id))

    def activity(self) -> list[dict[str, Any]]:
        return [self._entry(d) for d in reversed(self.uploader.queue.datasets()[-20:])]

    def _entry(self, d: Dataset) -> dict[str, Any]:
        q = self.uploader.queue
        counts, sizes = q.counts(d.id), q.byte_counts(d.id)
        total, done = sum(sizes.values()), sizes.get(State.REGISTERED.value, 0)
        rate = self._rate(d.id)
        return {
            "id": d.id, "name": d.name, "mode": d.mode, "state": d.state, "storage_path": d.storage_path,
            "files": counts, "files_total": sum(counts.values()), "bytes_total": total, "bytes_done": done,
            "rate": rate, "eta": (total - done) / rate if rate > 0 else None,
            "syncing": d.id in self.uploader.sessions,
            "recent": [f.relpath for f in q.recent_files(d.id, 8)],
            "errors": [{"path": f.relpath, "reason": f.last_error} for f in q.files(d.id, State.FAILED)[:50]]}

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
                             "paused": self.uploader.engine.paused.is_set(),
                             "login_needed": self.login_needed, "catalogue": self.cfg.catalogue.kind,
                             "waiting": self.uploader.engine.waiting},
                      activity=self.activity())
        return status


def _app_icon() -> Any:
    """The icon notifications carry (Windows balloons need .ico)."""
    from importlib import resources

    icon = resources.files("trayagent").joinpath("icons", "trayagent.ico" if sys.platform == "win32"
                                                 else "trayagent.png")
    return icon if icon.is_file() else None


def new_request_id() -> str:
    """A one-time dialog request id. Hex, because it travels as `dialog NAME --request ID`: a
    urlsafe token starting with '-' would be read by argparse as an option."""
    return secrets.token_hex(8)
