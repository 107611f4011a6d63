"""The agent: one per user, it owns the queue, the engine, the sync sessions and the control API.

It is UI-free and works through the ``Uploader`` facade only. The tray icon and the dialogs are thin
clients: the tray calls the agent's methods in-process; dialogs run in their own processes and speak
the control API (routes.py, typed against the small protocol it needs). The agent
turns engine events into notifications, keeps per-dataset rates for Activity, and survives any
single failure (a bad request, a storage outage, a wrong password) without stopping.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..config import SCHEMA, Config, load_config, validate
from ..errors import AuthError, ConfigError, StorageError, TrayagentError
from ..icons import app_icon
from ..paths import Paths
from ..pipeline.progress import Outcome, Progress
from ..platform.autostart import autostart
from ..platform.childenv import child_environment  # without what the tray icon set for itself
from ..platform.lock import ProcessLock
from ..queue import Dataset, DatasetState, Mode, QueueError
from ..storage.redact import Redactor
from ..uploader import Plan, Uploader
from .notify import Notifications, Sender, default_sender
from .routes import register_routes
from .server import ApiError, ControlServer

log = logging.getLogger(__name__)

OpenDialog = Callable[[str, dict[str, Any]], None]
STATUS_POLL = 0.5    # how often a waiting Activity's status is looked at, inside the agent
RETRY_SECONDS = 3.0  # while the storage refuses the password: how often the keyring is read again
FIX_RECHECK = 300.0  # a configuration problem (no such rclone remote) is tried again at least this often


class Agent:
    def __init__(self, cfg: Config, paths: Paths, redactor: Redactor | None = None,
                 send: Sender | None = None, open_dialog: OpenDialog | None = None) -> None:
        self.cfg = cfg
        self.paths = paths.ensure()
        self.uploader = Uploader(cfg, paths, redactor)
        self.notes = Notifications(send or default_sender(app_icon(), self._open_activity))
        self.server = ControlServer(paths.runtime_dir)
        self.open_dialog: OpenDialog = open_dialog or (lambda name, params: None)
        self.problem: str | None = None     # shown by the tray as the error state
        self.login_needed = False           # the catalogue session expired: tray shows logged-out
        self.storage_refused: str | None = None  # the storage refused (or lacks) the password: uploads wait
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
        self._new_cfg: Config | None = None  # saved settings waiting to be applied by the engine loop
        self._again = False  # Retry now: serve again at once (ends a wait for an unreachable storage)
        self._held: set[int] = set()  # datasets paused one by one in Activity (the others go on)
        self._deferred: list[tuple[Dataset, Plan]] = []  # uploads to scan once the storage takes the password
        self._progress: dict[str, Progress] = {}  # the engine's live progress per dataset name
        self._accepted: dict[str, float] = {}  # dataset name -> when this agent took it (for "done in N min")

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Take the per-user lock (Busy if another agent runs), resume work, open the API."""
        self._lock.acquire()
        try:
            self.uploader.prepare()
        except AuthError as exc:  # e.g. no password for a storage changed in Settings: ask, don't die
            self._storage_refused(exc)
        except TrayagentError as exc:  # e.g. an rclone remote that does not exist: say so, stay up
            self._cannot_work(exc)
        self.uploader.watch(on_failure=self._file_failed,
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
        """The engine runs until the agent stops. A refused storage password waits for a new one
        (read from the keyring every few seconds, so `trayagent login storage` or the Login dialog
        is picked up at once); saved settings are applied between two runs of the engine."""
        while not self._stopped.is_set():
            delay = 10.0
            try:
                self._apply_settings()
                if self.storage_refused is not None and not self._storage_accepted():
                    delay = RETRY_SECONDS
                else:
                    self._pipeline_ready()
                    self.uploader.serve(self._served, on_complete=self._completed,
                                        on_progress=self._progressed)
                    if self._new_cfg is None and not self._again:
                        return
                    self._again = False
                    continue
            except AuthError as exc:
                self._storage_refused(exc)
                delay = RETRY_SECONDS
            except ConfigError as exc:  # e.g. a storage remote that rclone does not know: no outage to
                self._cannot_work(exc)  # retry every few seconds, a setting to fix: wait for the fix
                self._wait_for_fix()
                continue
            except TrayagentError as exc:
                self._cannot_work(exc)
            except Exception:
                log.exception("engine error; retrying in 10 s")
                self.problem = "internal error; see the log"
            self.on_change()
            self._retry_engine.wait(delay)
            self._retry_engine.clear()

    def _pipeline_ready(self) -> None:
        """Build the pipeline (ConfigError while the storage setting cannot work). Once it builds after
        a problem (rclone's configuration fixed outside trayagent), the problem is over: said, and the
        uploads that waited for it are scanned."""
        self.uploader.prepare()
        if self.problem is not None:
            log.info("uploads go on: the problem is gone (%s)", self.problem)
            self.problem = None
            for dataset, plan in self._take_deferred():
                self._enqueue(dataset, plan)
            self.on_change()

    def _wait_for_fix(self) -> None:
        """Until the configuration may be fixed: saved Settings or Retry now (``_retry_engine``), or a
        change of rclone's configuration file (``rclone config`` added the remote; a stat every 2 s,
        no rclone call); at the latest after FIX_RECHECK seconds."""
        rclone_conf = self.uploader.rclone_config_file()

        def stamp() -> float | None:
            try:
                return os.stat(rclone_conf).st_mtime if rclone_conf else None
            except OSError:
                return None
        before, deadline = stamp(), time.monotonic() + FIX_RECHECK
        while not self._stopped.is_set() and time.monotonic() < deadline:
            if self._retry_engine.wait(2.0) or stamp() != before:
                break
        self._retry_engine.clear()
        if rclone_conf and stamp() != before:
            log.info("rclone's configuration %s changed: trying the storage again", rclone_conf)

    def _file_failed(self, dataset: Dataset, reason: str) -> None:
        """A failed file is told, unless its dataset was cancelled meanwhile (its batch was in flight)."""
        if self.uploader.dataset(dataset.id).state != DatasetState.CANCELLED:
            self.notes.file_failed(dataset.name, reason)

    def _cannot_work(self, exc: TrayagentError) -> None:
        """The agent stays up and says why uploads cannot go on: the icon, a notification, the log."""
        problem = f"{exc.message}. {exc.hint}".strip()
        if problem != self.problem:
            log.error("uploads wait: %s", exc)
        self.problem = problem
        self.notes.cannot_work(problem)
        self.on_change()

    def _storage_refused(self, exc: AuthError) -> None:
        if self.storage_refused != exc.message:
            log.error("uploads wait for a storage login: %s", exc)
        self.storage_refused = exc.message
        self.notes.login_needed("storage")
        self.on_change()

    def _storage_accepted(self) -> bool:
        """After a refusal: True once a new password from the keyring reaches the storage. The same
        password is never tried twice (a facility account may lock after a few failures)."""
        if not self.uploader.reload_storage():
            return False
        try:
            self.uploader.test_storage()
        except StorageError as exc:  # unreachable: cannot tell; the engine waits for the storage itself
            log.warning("storage not reachable to check the new password: %s", exc.message)
        self.storage_refused = self.problem = None
        self.notes.logged_in("storage")
        log.info("the storage accepted the password: uploads resume")
        for dataset, plan in self._take_deferred():
            self._enqueue(dataset, plan)
        self.on_change()
        return True

    def _take_deferred(self) -> list[tuple[Dataset, Plan]]:
        deferred, self._deferred = self._deferred, []
        return deferred

    def _apply_settings(self) -> None:
        """Saved settings take effect here, while the engine is between two runs."""
        cfg, self._new_cfg = self._new_cfg, None
        if cfg is None:
            return
        self.uploader.reconfigure(cfg)
        self.problem = self.storage_refused = None
        log.info("settings applied: storage %s, catalogue %s", cfg.storage.remote or "(embedded)",
                 cfg.catalogue.kind)
        self.uploader.prepare()  # AuthError here: the new storage needs its password (Log in...)
        for dataset, plan in self._take_deferred():
            self._enqueue(dataset, plan)

    def _storage_host(self) -> str:
        try:
            return self.uploader.target(need_secret=False).host
        except TrayagentError:
            return ""

    def _progressed(self, progress: Progress) -> None:
        self._progress[progress.dataset] = progress

    def _open_activity(self) -> None:
        """A click on one of our notifications."""
        self.request_dialog("activity", {})

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
        self._progress.pop(outcome.dataset, None)
        self.uploader.retire_completed_syncs()
        with self._completions:  # first: a CLI waiting for this dataset returns at once
            self._completions.notify_all()
        accepted = self._accepted.pop(outcome.dataset, None)  # the engine's clock starts at its first batch
        seconds = max(outcome.seconds, time.monotonic() - accepted) if accepted is not None else outcome.seconds
        self.notes.dataset_complete(outcome.dataset, outcome.files_ok, outcome.files_failed,
                                    outcome.bytes, seconds)
        self.on_change()

    def _housekeeping(self) -> None:
        """Aggregated notices, storage-unreachable watch, watched-folder warnings, rate samples."""
        gone: set[str] = set()
        while not self._stopped.wait(1.0):
            self.notes.flush()
            waiting = self.uploader.waiting or ""
            full = "full or over its quota" in waiting  # told by on_storage_full, not as unreachable
            self.notes.storage_state(not waiting.startswith("storage") or full, waiting, self._storage_host())
            if not full:
                self.notes.storage_has_room()
            now_gone = self.uploader.gone_folders()
            for folder in now_gone - gone:
                self.notes.folder_gone(folder)
            for folder in gone - now_gone:
                self.notes.folder_back(folder)
            gone = now_gone
            for dataset_id in self.uploader.served_ids():
                done = self._bytes_sent(self.uploader.dataset(dataset_id))
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
        self._accepted.setdefault(dataset.name, time.monotonic())
        threading.Thread(target=self._enqueue, args=(dataset, plan), name="scan", daemon=True).start()
        # what holds every upload until someone acts (a setting to fix): the CLI says it, not waits mutely
        return {"dataset_id": dataset.id, "storage_path": dataset.storage_path, "problem": self.problem}

    def _enqueue(self, dataset: Dataset, plan: Plan) -> None:
        errors: list[str] = []
        try:
            self.uploader.enqueue(dataset, plan, errors)
        except AuthError as exc:  # no pipeline without the storage password: scanned after the login
            self._deferred.append((dataset, plan))
            self._storage_refused(exc)
            return
        except ConfigError as exc:  # no pipeline on this storage setting: scanned once it is fixed
            self._deferred.append((dataset, plan))
            self._cannot_work(exc)
            return
        for problem in errors:
            self.notes.file_failed(dataset.name, problem)

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self.uploader.start_sync(self.plan_from(body, Mode.SYNC))
        self._accepted.setdefault(dataset.name, time.monotonic())
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

    def _served(self) -> list[int]:
        """The datasets the engine works on: this agent's active ones, except those paused one by one."""
        return [i for i in self.uploader.served_ids() if i not in self._held]

    def dataset_action(self, dataset_id: int, action: str) -> dict[str, Any]:
        dataset = self.uploader.dataset(dataset_id)
        if action in ("pause", "resume"):  # the batch in flight finishes; no new one starts for it
            (self._held.add if action == "pause" else self._held.discard)(dataset_id)
            log.info("dataset %s %s", dataset.name, "paused" if action == "pause" else "resumed")
            if action == "resume":
                self.retry_now(dataset_id)
            self.on_change()
            return {"paused": action == "pause"}
        if action == "open-folder":
            return {"opened": open_folder(_data_folder(dataset))}
        if action == "open-catalogue":
            url = self.catalogue_page(dataset)
            if not url:
                raise ApiError(404, f"{dataset.name} has no page in the catalogue",
                               "Set [catalogue] web_url (e.g. https://scicat.example.org/datasets/{pid}) in "
                               "Settings." if not self.cfg.catalogue.web_url else
                               "It gets one once it is registered.")
            return {"opened": open_folder(url)}
        if action == "cancel":
            return self.cancel(dataset)
        if action == "retry":
            failed = self.uploader.retry_failed(dataset_id)
            return {"retried": failed + self.retry_now(dataset_id)["retried"]}
        act = {"stop": self.uploader.stop_sync, "finalize": self.uploader.finalize_sync}[action]
        if not act(dataset_id):
            raise ApiError(409, f"{dataset.name} has no running sync session")
        self.on_change()
        return {"ok": True}

    def cancel(self, dataset: Dataset) -> dict[str, Any]:
        """Activity's Cancel (after its confirmation): the dataset's files not yet sent leave the queue,
        its sync session stops watching, nothing more is told of it; what is in storage and the
        catalogue stays. An upload of the same dataset later starts it again."""
        if dataset.state != DatasetState.ACTIVE:
            raise ApiError(409, f"{dataset.name} is {dataset.state}: there is nothing to cancel")
        dropped = self.uploader.cancel(dataset.id)
        self._held.discard(dataset.id)
        self._rates.pop(dataset.id, None)
        self._progress.pop(dataset.name, None)
        self._accepted.pop(dataset.name, None)
        self.notes.forget(dataset.name)  # failures of its last batch, not yet told: never told
        with self._completions:  # a CLI following it hears of the end at once
            self._completions.notify_all()
        self.on_change()
        return {"cancelled": True, "dropped": dropped}

    def catalogue_page(self, dataset: Dataset) -> str:
        """The dataset's web page in the catalogue ([catalogue] web_url with its id), or ''."""
        template = self.cfg.catalogue.web_url
        if not template or not dataset.catalogue_id or dataset.catalogue_kind != self.cfg.catalogue.kind:
            return ""
        return template.replace("{pid}", quote(dataset.catalogue_id, safe=""))

    def pause(self, paused: bool) -> None:
        """Pause all, or Resume: which also retries at once what waits for a retry slot."""
        self.uploader.pause(paused)
        if not paused:
            self.retry_now()
        self.on_change()

    def retry_now(self, dataset_id: int | None = None) -> dict[str, Any]:
        """Retry now (tray, Activity): files waiting for a retry slot go at once, a wait for the storage
        ends (the engine checks it again now), a refused password is read again from the keyring."""
        retried = self.uploader.retry_now(dataset_id)
        if (self.uploader.waiting or "").startswith("storage"):
            self._again = True
            self.uploader.stop()
        self._retry_engine.set()
        log.info("retry now%s: %d files due at once", f" (dataset {dataset_id})" if dataset_id else "", retried)
        self.on_change()
        return {"retried": retried}

    def in_flight(self) -> int:
        return self.uploader.in_flight()

    @property
    def paused(self) -> bool:
        return self.uploader.paused

    @property
    def waiting(self) -> str | None:
        """Why the engine waits (storage unreachable, catalogue trouble), if it does."""
        return self.uploader.waiting

    def syncing(self) -> list[tuple[int, str]]:
        """(dataset id, name) of the running sync sessions."""
        return self.uploader.syncing()

    def uploads(self) -> list[tuple[int, str, bool]]:
        """(dataset id, name, paused one by one) of this agent's batch uploads under way: the tray
        lists them, each with its own Pause and Cancel."""
        served = map(self.uploader.dataset, self.uploader.served_ids())
        return [(d.id, d.name, d.id in self._held) for d in served if d.mode == "batch"]

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
        """Validate and write config.toml (keeping its comments; locked keys refused), then apply it
        live: the engine finishes its step and starts again on the new storage, catalogue and transfer
        settings (sync timing applies to sessions started from now on). A storage password typed in the
        form is tried on that storage, then kept in the keyring; a refused one saves nothing."""
        from ..configfile import save_settings

        sections = body.get("settings") or {}
        if password := body.get("storage_password"):
            checked = validate({k: v for k, v in sections.items() if k in SCHEMA}, "settings")
            self._store_storage_password(Config.of(checked, source=None), str(password))
        path = save_settings(self.cfg, self.paths, sections)  # keeps the file's comments; refuses locked keys
        if "autostart" in body:
            autostart().set(bool(body["autostart"]))
        self.cfg = load_config(self.paths, path)
        self._new_cfg = self.cfg
        self.uploader.stop()            # serve returns after its step; the engine loop applies the settings
        self._retry_engine.set()
        log.info("settings saved to %s; applying them", path)
        return {"saved": str(path), "applied": True, "restart_needed": False}

    def test_connection(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Settings dialog's Test: reach the storage the form describes, with the password typed
        there (else the stored one); a failure is the answer, not an error."""
        try:
            cfg = self.cfg
            if body and body.get("settings"):
                cfg = Config.of(validate({k: v for k, v in body["settings"].items() if k in SCHEMA}, "settings"),
                                source=self.cfg.source)
            secret = str(body.get("storage_password") or "") if body else ""
            if not secret and cfg.storage.user and cfg.storage.remote:
                secret = self.uploader.stored_storage_secret(cfg) or ""
            if not secret and cfg.storage.user and cfg.storage.remote:
                return {"ok": False, "error": f"no password for {cfg.storage.user}: type it in the password "
                                              "field (or log in to the storage), then test again"}
            return {"ok": True, **self.uploader.check_storage(cfg, secret or None)}
        except TrayagentError as exc:
            return {"ok": False, "error": exc.message, "hint": exc.hint, "field": exc.field}
        except Exception as exc:  # noqa: BLE001 - reported to the user as the test result
            return {"ok": False, "error": str(exc)}

    # -- the storage account --------------------------------------------------------------------
    def storage_account(self) -> dict[str, Any]:
        """What the Login dialog shows for the storage: where, who, and whether it waits for a login."""
        remote = self.cfg.storage.remote
        return {"needed": bool(remote and self.cfg.storage.user), "user": self.cfg.storage.user,
                "storage": self.uploader.target(need_secret=False).display, "refused": self.storage_refused}

    def storage_login(self, user: str | None, password: str | None) -> dict[str, Any]:
        """The Login dialog's storage account: the password is tried on the storage first (a wrong
        one is refused here, not stored), then kept in the keyring; waiting uploads resume at once."""
        cfg = self.cfg
        if not cfg.storage.remote:
            raise ApiError(404, "The embedded local storage needs no login.")
        if not password:
            raise ApiError(400, "Give the storage password.", field="storage.secret")
        if user and user != cfg.storage.user:
            raise ApiError(400, f"The storage user is {cfg.storage.user!r} ([storage] user in Settings).",
                           field="user")
        self._store_storage_password(cfg, password)
        self._retry_engine.set()
        return {"user": cfg.storage.user, "storage": self.uploader.target(need_secret=False).display}

    def _store_storage_password(self, cfg: Config, password: str) -> None:
        from ..secrets.store import set_secret, storage_service

        if not cfg.storage.user:
            raise ApiError(400, "Set the storage user first ([storage] user).")
        try:
            self.uploader.check_storage(cfg, password)
        except AuthError as exc:
            raise ApiError(401, "The storage refused this password.",
                           f"Check the password of {cfg.storage.user} ({exc.message}).",
                           field="storage.secret") from None
        except StorageError as exc:
            log.warning("storage not reachable to check the password; storing it anyway: %s", exc.message)
        set_secret(storage_service(str(cfg.storage.remote)), cfg.storage.user, password)
        log.info("storage password of %s stored from the dialog", cfg.storage.user)

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
            raise ApiError(401, exc.message, exc.hint, field=exc.field or "secret") from None
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
        if self.storage_refused or self.login_needed:
            return "logged-out"
        if self.problem:
            return "error"
        if self.uploader.paused:
            return "paused"
        return "syncing" if self.uploader.syncing() or self.in_flight() else "idle"

    def wait_dataset(self, dataset_id: int, timeout: float) -> dict[str, Any]:
        """The dataset's activity entry once it is complete, or after ``timeout`` seconds (at most
        60): a CLI following its upload hears of the end at once instead of at its next poll."""
        deadline = time.monotonic() + min(max(timeout, 0.0), 60.0)
        with self._completions:
            while (left := deadline - time.monotonic()) > 0 and self.running and \
                    self.uploader.dataset(dataset_id).state == DatasetState.ACTIVE:
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

    def _bytes_sent(self, d: Dataset) -> int:
        """Bytes in storage, counting what rclone has sent of the batch in flight (live, from its
        transfer statistics): a 4 GiB batch shows its progress, not 0 B until it ends."""
        done = self.uploader.registered_bytes(d.id)
        live = self._progress.get(d.name)
        return max(done, live.bytes_done) if live is not None and d.state == DatasetState.ACTIVE else done

    def _entry(self, d: Dataset) -> dict[str, Any]:
        entry = self.uploader.activity(d)
        entry["bytes_done"] = max(entry["bytes_done"], self._bytes_sent(d))
        entry["held"] = d.id in self._held
        entry["catalogue_page"] = self.catalogue_page(d)
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
                             "storage_refused": self.storage_refused,
                             "waiting": self.uploader.waiting},
                      activity=self.activity())
        return status

    def status_changed(self, since: str, timeout: float) -> dict[str, Any]:
        """The status once it differs from version ``since`` (or after ``timeout`` s, at most 60): Activity
        waits here instead of asking every second, so an idle window costs one request a minute.
        ``version`` is a digest of the status; the dialog sends back the one it shows."""
        deadline = time.monotonic() + min(max(timeout, 0.0), 60.0)
        while True:
            status = self.status()
            version = hashlib.sha1(json.dumps(status, sort_keys=True, default=str).encode()).hexdigest()[:16]
            if version != since or time.monotonic() >= deadline or not self.running:
                return {**status, "version": version}
            self._stopped.wait(min(STATUS_POLL, max(deadline - time.monotonic(), 0.0)))


def _data_folder(dataset: Dataset) -> str:
    """The folder the dataset's files come from (its first source, or that file's folder)."""
    sources = dataset.spec.get("source_folders") or []
    if not sources:
        raise ApiError(404, f"{dataset.name} has no source folder on record")
    first = Path(str(sources[0]))
    return str(first if first.is_dir() else first.parent)


def open_folder(folder: str) -> str:
    """Show ``folder`` in the file manager (Activity's "Open folder"), or a URL in the web browser
    ("Open in catalogue"): the desktop's opener handles both."""
    if sys.platform == "win32":
        os.startfile(folder)  # type: ignore[attr-defined,unused-ignore]
        return folder
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen([opener, folder], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, env=child_environment())
    except OSError as exc:
        raise ApiError(500, f"could not open {folder} ({exc})", f"Open it yourself: {folder}") from None
    log.info("opened %s", folder)
    return folder


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
