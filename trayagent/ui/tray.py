"""The tray icon: a thin view of the agent (icon per state, progress tooltip, right-click menu).

pystray runs in the main thread. The agent calls ``on_change`` from its threads (at least once a second
from housekeeping); a refresher thread turns that into at most one update a second, computes a
snapshot (``View``) off the GUI thread, and touches the icon only when something visible changed: the
image when the state changes, the tooltip when the text changes, the menu when its entries change.

Linux backends (pystray): ``appindicator`` when a StatusNotifierWatcher runs on the session bus (KDE,
GNOME with the AppIndicator extension, most panels), else ``gtk`` (GtkStatusIcon in an XEmbed system
tray: XFCE, MATE, LXDE, trayer, stalonetray), else ``appindicator`` anyway (libayatana falls back to
XEmbed itself), and ``xorg`` only as the last resort: it has no menu, so a WARNING says so and a click
opens Activity. ``PYSTRAY_BACKEND`` overrides the choice.

Quitting: with nothing in flight, Quit quits. With files in flight the entry becomes a submenu
"Quit (N files in flight)" offering "Quit when the uploads are done" (the agent keeps going and quits
itself as soon as nothing is in flight; the entry then reads "Quitting after N files" and offers
"Don't quit") and "Quit now": nothing is lost either way, queued files resume at the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from ..icons import icon_file
from ..platform.childenv import child_environment
from .backends import import_pystray
from .status import ICONS, summarize

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..agent.agent import Agent

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 1.0   # at most one icon/menu update per second


@cache
def load_icon(state: str) -> Image:
    from PIL import Image, ImageDraw

    try:
        with Image.open(icon_file(ICONS.get(state, state))) as img:
            return img.convert("RGBA")
    except OSError:  # an incomplete install: a plain disc still tells the states apart by colour
        log.warning("tray icon %s missing; drawing a plain one", icon_file(state))
        colours = {"idle": "#0072b2", "syncing": "#009e73", "paused": "#e69f00", "error": "#d55e00"}
        disc = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        ImageDraw.Draw(disc).ellipse([2, 2, 62, 62], fill=colours.get(state, "#787878"))
        return disc


@dataclass(frozen=True)
class View:
    """A snapshot of what the tray shows; computed off the GUI thread."""

    state: str = "idle"
    title: str = "trayagent"
    status: str = "Starting…"   # the line at the top of the menu
    held: bool = False          # files wait (paused, refused, unreachable) rather than move
    storage_login: bool = False  # the Login dialog should open on the storage account
    paused: bool = False
    sessions: tuple[tuple[int, str], ...] = ()
    uploads: tuple[tuple[int, str, bool], ...] = ()  # batch uploads under way: (id, name, paused)
    in_flight: int = 0
    login_needed: bool = False
    scicat: bool = False
    quit_pending: bool = False
    stopping: bool = False

    def menu_key(self) -> tuple[Any, ...]:
        return (self.status, self.held, self.storage_login, self.paused, self.sessions, self.uploads, self.in_flight,
                self.login_needed, self.scicat, self.quit_pending, self.stopping)


# -- the tray ---------------------------------------------------------------------------------------
class Tray:
    def __init__(self, agent: Agent, pystray: Any, backend: str) -> None:
        self.agent = agent
        self.pystray = pystray
        self.backend = backend
        self.view = View()
        self._dirty = threading.Event()
        self._quit_pending = False
        self._stopping = False
        self._old_menus: list[Any] = []
        self.icon = pystray.Icon("trayagent", load_icon("idle"), "trayagent", menu=pystray.Menu(self._items))

    # refreshing ------------------------------------------------------------------------------------
    def changed(self) -> None:
        """``agent.on_change``: cheap, any thread; the refresher does the work."""
        self._dirty.set()

    def snapshot(self) -> View:
        agent = self.agent
        summary = summarize(agent)
        sessions = tuple(agent.syncing())
        title = "trayagent: stopping…" if self._stopping else summary.tooltip
        return View(state=summary.state, title=title, status=summary.line, held=summary.held,
                    storage_login=bool(agent.storage_refused), paused=agent.paused,
                    sessions=sessions, uploads=tuple(agent.uploads()), in_flight=agent.in_flight(),
                    login_needed=summary.state == "logged-out",
                    scicat=agent.catalogue_kind == "scicat", quit_pending=self._quit_pending,
                    stopping=self._stopping)

    def _refresher(self) -> None:
        last = 0.0
        while self.agent.running or self._stopping:
            self._dirty.wait(5.0)
            time.sleep(max(0.0, last + REFRESH_INTERVAL - time.monotonic()))
            self._dirty.clear()
            last = time.monotonic()
            try:
                self.apply(self.snapshot())
            except Exception:  # a failed refresh must not end the tray
                log.exception("tray refresh failed")
            if self._quit_pending and not self._stopping and self.view.in_flight == 0:
                log.info("tray: uploads done; quitting as asked")
                self.quit()

    def apply(self, view: View) -> None:
        old, self.view = self.view, view
        if view.state != old.state:
            log.info("tray: state %s -> %s", old.state, view.state)
            self.icon.icon = load_icon(view.state)
        if view.status != old.status:
            log.info("tray: status %s", view.status)
        if view.title != old.title:
            self.icon.title = view.title
            self._set_tooltip(view.title)
        if view.menu_key() != old.menu_key():
            self._keep_menu_alive()
            self.icon.update_menu()

    def _set_tooltip(self, text: str) -> None:
        """pystray's gtk backend sets only the accessible title; the hover text is the tooltip."""
        status_icon = getattr(self.icon, "_status_icon", None)
        if status_icon is not None:
            from gi.repository import GLib  # type: ignore[import-untyped,unused-ignore]

            GLib.idle_add(lambda: status_icon.set_tooltip_text(text) and False)

    def _keep_menu_alive(self) -> None:
        """A rebuilt menu replaces the old Gtk.Menu; keep the old one referenced in case it is open."""
        handle = getattr(self.icon, "_menu_handle", None)
        if handle is not None:
            self._old_menus = [*self._old_menus[-3:], handle]

    # the menu --------------------------------------------------------------------------------------
    def _items(self) -> Iterator[Any]:
        item, menu, sep, v = self.pystray.MenuItem, self.pystray.Menu, self.pystray.Menu.SEPARATOR, self.view
        yield item(v.status, None, enabled=False)  # not selectable: the keyboard skips it
        yield sep
        yield item("Start sync...", self._later(lambda: self.show("dataset", {"mode": "sync"})))
        yield item("Upload folder...", self._later(lambda: self.show("dataset", {"mode": "batch"})))
        if v.sessions or v.uploads:
            yield sep
        for dataset_id, name in v.sessions:
            yield item(f"Syncing {name}", menu(
                item("Stop watching", self._later(partial(self.agent.dataset_action, dataset_id, "stop"))),
                item("Finalize dataset", self._later(partial(self.agent.dataset_action, dataset_id, "finalize"))),
                item("Cancel…", self._later(partial(self.ask_cancel, dataset_id)))))
        for dataset_id, name, paused in v.uploads:
            hold = self._later(partial(self.agent.dataset_action, dataset_id, "resume" if paused else "pause"))
            yield item(f"Uploading {name}{' (paused)' if paused else ''}", menu(
                item("Resume" if paused else "Pause", hold),
                item("Cancel…", self._later(partial(self.ask_cancel, dataset_id)))))
        yield sep
        if v.state == "waiting":
            yield item("Retry now", self._later(self.agent.retry_now))
        yield item("Resume" if v.paused else "Pause all", self._later(lambda: self.agent.pause(not v.paused)))
        yield item("Activity...", self._later(lambda: self.show("activity", {})), default=True)
        yield sep
        account = {"account": "storage"} if v.storage_login else {}
        yield item("Log in... (needed)" if v.login_needed else "Log in...",
                   self._later(lambda: self.show("login", account)))
        if v.scicat:
            yield item("Log out", self._later(self.logout))
        yield item("Settings...", self._later(lambda: self.show("settings", {})))
        yield item("Open log folder", self._later(self.open_log_folder))
        yield sep
        if v.stopping:
            yield item("Quitting…", None, enabled=False)
        elif v.quit_pending:
            yield item(f"Quitting after {v.in_flight} files", menu(
                item("Don't quit", self._later(self.cancel_quit)),
                item("Quit now (the rest resumes at the next start)", self._later(self.quit))))
        elif v.in_flight:
            yield item(f"Quit ({v.in_flight} files {'waiting' if v.held else 'in flight'})", menu(
                item("Quit when the uploads are done", self._later(self.quit_when_done)),
                item("Quit now (the rest resumes at the next start)", self._later(self.quit))))
        else:
            yield item("Quit", self._later(self.quit))

    def _later(self, action: Callable[[], Any]) -> Callable[[], None]:
        """Menu callbacks run on the GUI thread: do the work on a thread so the menu never freezes."""
        def run() -> None:
            def guarded() -> None:
                try:
                    action()
                except Exception:  # report, keep the tray alive
                    log.exception("tray: menu action failed")
                self.changed()
            threading.Thread(target=guarded, name="tray-action", daemon=True).start()
        return run

    # actions ---------------------------------------------------------------------------------------
    def show(self, name: str, params: dict[str, Any]) -> None:
        """Open a dialog (the request id carries ``params`` to the page)."""
        self.agent.request_dialog(name, dict(params))
        log.info("tray: asked for the %s dialog %s", name, params or "")

    def ask_cancel(self, dataset_id: int) -> None:
        """Cancel drops what is not yet sent, so it is asked in Activity, on that dataset's card, as
        its own Cancel… is: the tray never drops files on one click."""
        self.show("activity", {"dataset": dataset_id, "ask": "cancel"})

    def logout(self) -> None:
        removed = self.agent.logout()
        log.info("tray: logged out of the catalogue" if removed else "tray: nobody was logged in")

    def open_log_folder(self) -> None:
        folder = str(self.agent.paths.log_dir)
        if sys.platform == "win32":
            os.startfile(folder)  # type: ignore[attr-defined,unused-ignore]
            return
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        try:
            subprocess.Popen([opener, folder], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, env=child_environment())
        except OSError as exc:
            log.warning("tray: could not open the log folder %s (%s)", folder, exc)

    def quit_when_done(self) -> None:
        log.info("tray: quitting when the %d files in flight are done", self.agent.in_flight())
        self._quit_pending = True

    def cancel_quit(self) -> None:
        self._quit_pending = False

    def quit(self) -> None:
        """Stop the agent (the batch in flight finishes, the rest stays queued), then the icon."""
        if self._stopping:
            return
        self._stopping = True
        log.info("tray: quit (%d files in flight)", self.agent.in_flight())
        self.changed()
        try:
            self.agent.stop()
        finally:
            for child in getattr(self.agent.open_dialog, "children", []):
                if child.poll() is None:
                    child.terminate()
            self._stopping = False
            self.icon.stop()

    # running ---------------------------------------------------------------------------------------
    def _setup(self, icon: Any) -> None:
        """Runs on pystray's setup thread once the icon exists."""
        self.apply(self.snapshot())
        icon.visible = True
        if self.backend in ("gtk", "appindicator"):
            from gi.repository import GLib  # type: ignore[import-untyped,unused-ignore]

            def on_signal() -> bool:
                threading.Thread(target=self.quit, daemon=True).start()
                return False

            for sig in (signal.SIGTERM, signal.SIGINT):   # after pystray reset SIGINT to the default
                GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, on_signal)
            GLib.timeout_add_seconds(5, self._check_embedded)
        threading.Thread(target=self._refresher, name="tray-refresh", daemon=True).start()
        threading.Thread(target=self._follow_agent, name="tray-follow", daemon=True).start()

    def _check_embedded(self) -> bool:
        status_icon = getattr(self.icon, "_status_icon", None)
        if status_icon is not None:
            if status_icon.is_embedded():
                log.info("tray: icon embedded in the system tray")
            else:
                log.warning("tray: no system tray took the icon (no XEmbed tray on this display?); use "
                            "`trayagent open` or the control API, or run a tray such as trayer")
        return False

    def _follow_agent(self) -> None:
        """The agent can stop without the menu (POST /api/quit): the icon goes with it."""
        self.agent.wait()
        if not self._stopping:
            self.icon.stop()

    def run(self) -> int:
        self.agent.on_change = self.changed
        if self.backend not in ("gtk", "appindicator"):
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: threading.Thread(target=self.quit, daemon=True).start())
        self.icon.run(setup=self._setup)
        self.agent.stop()
        return 0


def run_tray(agent: Agent) -> int:
    """Show the tray icon until Quit (or the agent stops); main thread. No display: run headless."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log.warning("tray: no display (DISPLAY/WAYLAND_DISPLAY unset): running without a tray icon")
        return _headless(agent)
    try:
        pystray, backend = import_pystray()
    except ImportError as exc:
        log.warning("tray: %s; running without a tray icon", exc)
        return _headless(agent)
    return Tray(agent, pystray, backend).run()


def _headless(agent: Agent) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: threading.Thread(target=agent.stop, daemon=True).start())
    agent.wait()
    return 0
