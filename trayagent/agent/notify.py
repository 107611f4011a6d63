"""Desktop notifications: what is worth interrupting a scientist for, and how often.

The policy (``Notifications``) is plain logic: one notice per completed dataset, failures
aggregated per dataset over a short window ("3 files of run42 failed: permission denied"), login
and storage trouble said once until resolved, a global rate limit. The delivery (``Sender``) is
one small interface. On Linux ``DBusSender`` talks to the desktop's notification service
(org.freedesktop.Notifications) directly through jeepney, a pure-Python dependency: with the app
icon, an expiry, urgency for problems, one bubble per subject replaced rather than stacked, and a
"default" action that opens Activity where the service supports actions. plyer, the fallback
elsewhere, needs dbus-python on Linux and otherwise runs `notify-send -t 0` (no icon, no expiry,
bubbles that pile up), so it is used on Linux only when no session bus answers.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..formats import human_bytes

log = logging.getLogger(__name__)

APP_NAME = "trayagent"


EXPIRE_MS = 10_000        # an ordinary notice fades after 10 s (urgent ones stay, as the service decides)
NOTIFICATIONS = "org.freedesktop.Notifications"


class Sender(Protocol):
    """Shows one notification. A sender that can replace an earlier bubble of the same subject also
    has ``keyed(title, message, urgent, subject)``, which ``Notifications`` then uses."""

    def __call__(self, title: str, message: str, urgent: bool = False) -> None: ...


class DBusSender:
    """org.freedesktop.Notifications over jeepney. ``key`` names the subject: a second notice on the
    same subject replaces the first bubble. ``on_action`` runs (on a listener thread) when the user
    clicks a notification, if the service supports actions. Failures are logged, never raised."""

    def __init__(self, icon: Path | None = None, on_action: Callable[[], None] | None = None,
                 fallback: Sender | None = None) -> None:
        self.icon = icon
        self.on_action = on_action
        self.fallback = fallback  # used once the session bus or its notification service is found missing
        self._router: Any = None
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}     # subject -> the id of its bubble
        self._ours: set[int] = set()       # ids of our bubbles (the service is shared by every app)
        self._actions = False
        self._fell_back = False

    def _address(self) -> Any:
        from jeepney import DBusAddress

        return DBusAddress("/org/freedesktop/Notifications", bus_name=NOTIFICATIONS, interface=NOTIFICATIONS)

    def _connect(self) -> Any:
        if self._router is None:
            from jeepney import new_method_call
            from jeepney.io.threading import DBusRouter, open_dbus_connection

            router = DBusRouter(open_dbus_connection(bus="SESSION"))
            try:
                reply = router.send_and_get_reply(new_method_call(self._address(), "GetCapabilities"), timeout=5)
            except BaseException:
                router.close()
                raise
            self._actions = "actions" in list(reply.body[0])
            self._router = router
            if self._actions and self.on_action is not None:
                threading.Thread(target=self._listen, name="notify-actions", daemon=True).start()
        return self._router

    def __call__(self, title: str, message: str, urgent: bool = False) -> None:
        self.keyed(title, message, urgent, "")

    def keyed(self, title: str, message: str, urgent: bool, key: str) -> None:
        from jeepney import new_method_call

        if self._fell_back and self.fallback is not None:
            self.fallback(title, message, urgent)
            return
        if self._router is None and self.fallback is not None:
            try:
                with self._lock:
                    self._connect()
            except Exception as exc:  # noqa: BLE001 - no session bus or no notification service
                log.info("no notification service on the session bus (%s); using plyer", exc)
                self._fell_back = True
                self.fallback(title, message, urgent)
                return
        try:
            with self._lock:
                router = self._connect()
                hints = {"urgency": ("y", 2 if urgent else 1), "desktop-entry": ("s", APP_NAME)}
                actions = ["default", "Open Activity"] if self._actions and self.on_action else []
                body = (APP_NAME, self._ids.get(key, 0), str(self.icon or ""), title, message, actions, hints,
                        0 if urgent else EXPIRE_MS)
                reply = router.send_and_get_reply(
                    new_method_call(self._address(), "Notify", "susssasa{sv}i", body), timeout=5)
                notification_id = int(reply.body[0])
                self._ours.add(notification_id)
                if key:
                    self._ids[key] = notification_id
        except Exception as exc:  # noqa: BLE001 - a notification is a nicety: log, never raise
            log.warning("could not show a notification (%s): %s: %s", exc, title, message)

    def _listen(self) -> None:
        """Clicks on our notifications (ActionInvoked) open Activity."""
        from jeepney.bus_messages import MatchRule, message_bus

        rule = MatchRule(type="signal", interface=NOTIFICATIONS, member="ActionInvoked",
                         path="/org/freedesktop/Notifications")
        try:
            router = self._router
            router.send_and_get_reply(message_bus.AddMatch(rule), timeout=5)
            with router.filter(rule, bufsize=16) as queue:
                while True:
                    notification_id, _action = queue.get().body
                    if notification_id in self._ours and self.on_action is not None:
                        log.info("notification clicked: opening Activity")
                        self.on_action()
        except Exception as exc:  # noqa: BLE001 - the bus went away: clicks do nothing more
            log.debug("notification actions no longer followed: %s", exc)


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
        keyed = getattr(self.send, "keyed", None)
        if keyed is not None:
            keyed(title, message, urgent, ":".join(key.split(":")[:2]))  # the subject: "failed:run42"
        else:
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

    def forget(self, dataset: str) -> None:
        """The dataset was cancelled: failures gathered for it are not told."""
        with self._lock:
            self._failures.pop(dataset, None)

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
        """Say once what waits and what to do: a refused storage password holds the uploads; an
        expired catalogue session holds only the registration."""
        if what == "storage":
            text = ("The storage refused the password (or none is stored). Uploads wait: choose Log in… "
                    "in the tray menu, or run `trayagent login storage`.")
        else:
            text = (f"{what}: your session expired or was refused. Uploads continue; registration waits "
                    "for you to log in again (Log in… in the tray menu).")
        self._once(f"login:{what}", "Log in to go on", text)

    def cannot_work(self, problem: str) -> None:
        """Uploads cannot go on until the user changes something (Settings): said once per problem."""
        self._once(f"problem:{problem[:80]}", "Uploads cannot go on", f"{problem} Open Settings… in the tray "
                   "menu; the agent goes on by itself once it can.")

    def logged_in(self, what: str) -> None:
        self._said.discard(f"login:{what}")

    def storage_state(self, reachable: bool, detail: str = "", where: str = "") -> None:
        """Say once when storage has been unreachable for ``unreachable_after`` seconds: what to check,
        in words; rclone's own text ("Mkcol ... dial tcp ...") goes to the log, not the bubble."""
        now = self.clock()
        if reachable:
            self._unreachable_since = None
            self._said.discard("unreachable")
            return
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= self.unreachable_after and "unreachable" not in self._said:
            minutes = (now - self._unreachable_since) / 60
            log.info("storage unreachable for %.0f min: %s", minutes, detail)
            self._once("unreachable", "Storage unreachable",
                       f"No contact with the storage{' at ' + where if where else ''} for {minutes:.0f} min. "
                       "Check this computer's network (cable, Wi-Fi, VPN) and whether the storage is up (the "
                       "facility's IT knows). Files wait in the queue and go up when it is back; Resume or "
                       "Retry now in Activity tries at once.")

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


def default_sender(icon: Path | None, on_action: Callable[[], None] | None = None) -> Sender:
    """D-Bus on Linux (plyer if no service answers there), plyer elsewhere (a balloon on Windows)."""
    if sys.platform.startswith("linux"):
        return DBusSender(icon, on_action, fallback=PlyerSender(icon))
    return PlyerSender(icon)
