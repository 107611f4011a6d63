"""Desktop notifications: what is worth interrupting a scientist for, and how often.

The policy (``Notifications``) is plain logic: one notice per completed dataset, failures
aggregated per dataset over a short window ("3 files of run42 failed: permission denied"), login
and storage trouble said once until resolved, a global rate limit. The delivery (``Sender``) is
one small interface; ``PlyerSender`` uses plyer (D-Bus/notify-send on Linux, a balloon on Windows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..formats import human_bytes

log = logging.getLogger(__name__)

APP_NAME = "trayagent"


class Sender(Protocol):
    def __call__(self, title: str, message: str, urgent: bool = False) -> None: ...


class PlyerSender:
    """plyer's notification facade; failures are logged, never raised (a notification is a nicety)."""

    def __init__(self, icon: Path | None = None) -> None:
        self.icon = icon

    def __call__(self, title: str, message: str, urgent: bool = False) -> None:
        try:
            from plyer import notification

            notification.notify(title=title, message=message, app_name=APP_NAME,
                                app_icon=str(self.icon) if self.icon else "", timeout=10)
        except Exception as exc:  # noqa: BLE001 - plyer raises anything from NotImplementedError up
            log.warning("could not show a notification (%s): %s: %s", exc, title, message)


@dataclass
class _Pending:
    first: float
    reasons: Counter[str]


class Notifications:
    """Decides which events become notifications. Thread-safe; ``flush`` sends due aggregates."""

    def __init__(self, send: Sender, *, failure_window: float = 10.0, min_interval: float = 2.0,
                 unreachable_after: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.send = send
        self.failure_window = failure_window
        self.min_interval = min_interval
        self.unreachable_after = unreachable_after
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, _Pending] = {}
        self._said: set[str] = set()
        self._last_sent: dict[str, float] = defaultdict(lambda: -1e9)
        self._unreachable_since: float | None = None

    def _emit(self, key: str, title: str, message: str, urgent: bool = False) -> None:
        now = self.clock()
        if now - self._last_sent[key] < self.min_interval:
            return
        self._last_sent[key] = now
        log.info("notification: %s: %s", title, message)
        self.send(title, message, urgent)

    def dataset_complete(self, name: str, files: int, failed: int, size: int, seconds: float) -> None:
        self.flush(force=True)
        minutes = f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
        text = f"{files} files, {human_bytes(size)} uploaded and registered in {minutes}"
        if failed:
            text += f"; {failed} failed (see Activity)"
        self._emit(f"complete:{name}", f"Dataset {name} complete", text, urgent=bool(failed))

    def file_failed(self, dataset: str, reason: str) -> None:
        with self._lock:
            pending = self._failures.setdefault(dataset, _Pending(self.clock(), Counter()))
            pending.reasons[_short(reason)] += 1

    def flush(self, force: bool = False) -> None:
        """Send aggregated failure notices whose window has passed (all of them if ``force``)."""
        now = self.clock()
        with self._lock:
            due = [(d, p) for d, p in self._failures.items() if force or now - p.first >= self.failure_window]
            for dataset, _ in due:
                del self._failures[dataset]
        for dataset, pending in due:
            count = sum(pending.reasons.values())
            reason, _ = pending.reasons.most_common(1)[0]
            noun = "file" if count == 1 else "files"
            self._emit(f"failed:{dataset}:{now}", f"Upload problem in {dataset}",
                       f"{count} {noun} of {dataset} failed: {reason}", urgent=True)

    def login_needed(self, what: str) -> None:
        self._once(f"login:{what}", "Log in to go on", f"{what}: your session expired or was refused. "
                   "Uploads continue; registration waits for you to log in again.")

    def logged_in(self, what: str) -> None:
        self._said.discard(f"login:{what}")

    def storage_state(self, reachable: bool, detail: str = "") -> None:
        """Say once when storage has been unreachable for ``unreachable_after`` seconds."""
        now = self.clock()
        if reachable:
            self._unreachable_since = None
            self._said.discard("unreachable")
            return
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= self.unreachable_after:
            minutes = (now - self._unreachable_since) / 60
            self._once("unreachable", "Storage unreachable",
                       f"No contact with the storage for {minutes:.0f} min ({detail}). Files wait in the "
                       "queue and go up when it is back.")

    def storage_full(self, detail: str) -> None:
        """Said once per pause: uploads to a full storage wait for space, files stay queued."""
        self._once("full", "Storage full", f"{detail}. Uploads wait and are tried again every few "
                   "minutes; free space or ask for a bigger quota. Nothing is lost.")

    def catalogue_refused(self, detail: str) -> None:
        """Said once per distinct refusal: registration waits for a fix only a person can make."""
        self._once(f"refused:{detail}", "Registration waits", f"The catalogue refused: {detail}\nUploads go "
                   "on; registration catches up by itself after the fix.")

    def queued_elsewhere(self, detail: str) -> None:
        """A queued dataset belongs to another configuration's storage or catalogue: it waits."""
        self._once(f"elsewhere:{detail}", "Dataset left in the queue", detail)

    def storage_has_room(self) -> None:
        self._said.discard("full")

    def folder_gone(self, folder: str) -> None:
        self._once(f"gone:{folder}", "Watched folder gone", f"{folder} disappeared (unplugged disk or "
                   "unmounted share?). It is watched again as soon as it is back.")

    def folder_back(self, folder: str) -> None:
        self._said.discard(f"gone:{folder}")

    def _once(self, key: str, title: str, message: str) -> None:
        if key in self._said:
            return
        self._said.add(key)
        self._emit(key, title, message, urgent=True)


def _short(reason: str) -> str:
    """The part of an error a person recognises: 'permission denied', not the whole path."""
    text = reason.split("\n")[0]
    if ": " in text and text.startswith(("/", "C:\\", "\\\\")):
        text = text.split(": ", 1)[1]
    text = text.split(" (")[0]
    return text[:120]
