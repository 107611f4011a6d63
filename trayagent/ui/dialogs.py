"""Dialog windows: each dialog is a web page of the agent, shown by pywebview in its own process.

Why a process per dialog: pywebview wants the main thread, and so does the tray on some platforms.
The dialog process reads the control token from the 0600 file itself (it never travels on a
command line) and hands it to the page in the URL fragment, which is never sent over the wire.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..agent.client import AgentClient, read_token
from ..errors import TrayagentError
from ..paths import Paths
from ..platform.selfcmd import self_command

log = logging.getLogger(__name__)

TITLES = {"dataset": "trayagent: Dataset", "activity": "trayagent: Activity", "login": "trayagent: Log in",
          "settings": "trayagent: Settings"}
SIZES = {"dataset": (760, 760), "activity": (760, 620), "login": (460, 560), "settings": (640, 680)}
MIN_SIZE = (360, 300)
# Room a desktop keeps around a window: its title bar and the panels (taskbar, top bar). A 760 px high
# dialog on a 768 px laptop screen would otherwise lose its buttons below the screen's edge.
SCREEN_MARGIN = (40, 110)


def fit_to_screen(size: tuple[int, int], screens: list[tuple[int, int]]) -> tuple[int, int]:
    """The dialog's size, shrunk to fit the smallest screen (the window may open on any of them),
    never below the minimum the pages are laid out for. Without screens: the size asked for."""
    if not screens:
        return size
    room_w = min(w for w, _ in screens) - SCREEN_MARGIN[0]
    room_h = min(h for _, h in screens) - SCREEN_MARGIN[1]
    return (max(MIN_SIZE[0], min(size[0], room_w)), max(MIN_SIZE[1], min(size[1], room_h)))


class DialogLauncher:
    """The agent's ``open_dialog``: starts ``trayagent dialog NAME`` as a child process."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.children: list[subprocess.Popen[bytes]] = []

    def __call__(self, name: str, params: dict[str, Any]) -> None:
        self.children = [c for c in self.children if c.poll() is None]
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            log.info("no display: the %s dialog was not opened", name)
            return
        cmd = self_command("dialog", name, "--request", str(params.get("request", "")), windowed=True)
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        from ..platform.childenv import child_environment

        self.children.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, creationflags=flags,
                                              env=child_environment()))
        log.info("opened the %s dialog", name)


def dialog_url(client: AgentClient, token: str, name: str, request: str) -> str:
    return f"{client.base_url}/ui/{name}.html#token={token}&request={request}"


class _Bridge:
    """What the page may ask of its native window (pywebview's ``js_api``): close it, pick or take
    dropped paths.

    Our pages' CSP has no 'unsafe-eval', and pywebview's own way back into the page (return values,
    ``evaluate_js``, its DOM API) is built on ``eval``; so these calls return nothing and hand their
    results to the page with ``run_js`` (plain script injection) calling ``window.trayagentDropped``.
    Attributes start with ``_`` so pywebview does not expose them to the page.
    """

    def __init__(self) -> None:
        self._window: Any = None

    def close(self) -> None:
        if self._window is not None:
            self._window.destroy()
            # Return only once the window is gone: pywebview then skips answering the page. Answering a
            # window being destroyed can block this call's (non-daemon) thread for ever, and with it
            # the process's exit.
            self._window.events.closed.wait(5)

    def pick(self, folders: bool = True) -> None:
        """The native chooser: folders (or files) to add to the dataset."""
        import webview

        kind = webview.FileDialog.FOLDER if folders else webview.FileDialog.OPEN
        chosen = self._window.create_file_dialog(kind, allow_multiple=True) if self._window else None
        self._give([str(p) for p in chosen or []])

    def dropped(self, names: list[str]) -> None:
        """Full paths of the files just dropped on the page, which the page itself knows by name only.

        The GTK backend records them (name, path) while a drop listener is registered (see
        ``_watch_drops``); this is the lookup pywebview's own DOM drop handler does.
        """
        from webview.dom import _dnd_state as state

        _dnd_state: dict[str, Any] = state  # pywebview internals, untyped
        paths = []
        for name in names:
            match = next((item for item in _dnd_state["paths"] if unquote(item[0]) == name), None)
            if match is not None:
                _dnd_state["paths"].remove(match)
                paths.append(unquote(match[1]))
        self._give(paths)

    def _give(self, paths: list[str]) -> None:
        if paths and self._window is not None:
            self._window.run_js(f"window.trayagentDropped && window.trayagentDropped({json.dumps(paths)})")


def _watch_drops() -> None:
    """Let the GTK backend record the full paths of dropped files (for ``_Bridge.dropped``)."""
    try:
        from webview.dom import _dnd_state

        state: dict[str, Any] = _dnd_state  # pywebview internals, untyped
        state["num_listeners"] += 1
    except (ImportError, AttributeError, KeyError, TypeError):  # another pywebview: typing paths still works
        log.debug("no drop support in this pywebview", exc_info=True)


class _PywebviewLog(logging.Filter):
    """pywebview's own logger printed tracebacks on the terminal for what is expected here: the CSP's
    refusal of its ``eval`` (see ``_Bridge``), once per dialog, and a toolkit that cannot be loaded
    (then the browser takes over). Those go to our log, one line at debug level."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage() + (f": {record.exc_info[1]}" if record.exc_info else "")
        if "unsafe-eval" in text or "cannot be loaded" in text:
            log.debug("pywebview (expected): %s", text.splitlines()[0][:300])
            return False
        return True


def _tame_pywebview_log() -> None:
    """pywebview's records go to our log (not its own terminal handler), without expected noise."""
    logger = logging.getLogger("pywebview")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.addFilter(_PywebviewLog())


def _quiet_bridge_errors() -> None:
    """pywebview answers every page call with ``evaluate_js`` (eval), which the CSP refuses: expected."""
    _tame_pywebview_log()
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.exc_value).__name__ == "JavascriptException":
            log.debug("pywebview could not answer the page: %s", args.exc_value)
            return
        previous(args)

    threading.excepthook = hook


def _name_the_program() -> None:
    """GTK names windows after the program (WM_CLASS ``__main__.py`` under ``python -m``), which docks
    and window lists showed; call it trayagent, like the tray icon. Before GTK starts."""
    try:
        from gi.repository import GLib  # type: ignore[import-untyped,unused-ignore]
    except (ImportError, ValueError):  # no GTK bindings: Qt or the browser shows the window
        return
    GLib.set_prgname("trayagent")
    GLib.set_application_name("trayagent")


def show_dialog(paths: Paths, name: str, request: str) -> int:
    """Run one dialog window until it is closed (blocks; needs the main thread)."""
    client = AgentClient.find(paths.runtime_dir)
    if client is None:
        raise TrayagentError("the trayagent agent is not running", "Start it with `trayagent`.")
    token = read_token(paths.runtime_dir)
    try:
        import webview
    except ImportError as exc:
        return _in_browser(client, name, request, f"pywebview is not installed ({exc})")

    _quiet_bridge_errors()  # before anything loads a toolkit: a missing one is expected, not a traceback
    _name_the_program()
    gui: Any = os.environ.get("TRAYAGENT_WEBVIEW_GUI") or None  # e.g. "qt" where GTK is missing
    width, height = fit_to_screen(SIZES[name], [] if gui else _screens(webview))
    bridge = _Bridge()
    window = webview.create_window(TITLES[name], dialog_url(client, token, name, request), width=width,
                                   height=height, min_size=MIN_SIZE, js_api=bridge,
                                   background_color="#F6F7F9")
    bridge._window = window
    if name == "dataset":
        _watch_drops()
    try:
        webview.start(gui=gui, private_mode=True)
    except Exception as exc:  # WebViewException: neither GTK nor Qt (a plain pip install has neither)
        if type(exc).__name__ != "WebViewException":
            raise
        return _in_browser(client, name, request, str(exc))
    return 0


def _screens(webview: Any) -> list[tuple[int, int]]:
    """The screens' sizes in pixels, or none where pywebview cannot tell before its window opens
    (then the window gets its usual size). Asking loads pywebview's default toolkit: not done when
    another one is chosen (``TRAYAGENT_WEBVIEW_GUI``)."""
    try:
        return [(int(s.width), int(s.height)) for s in webview.screens if s.width > 0 and s.height > 0]
    except Exception as exc:  # no GUI toolkit yet, or a backend without screens: not worth a failure
        log.debug("the screen size is unknown (%s): the dialog opens at its usual size", exc)
        return []


def _in_browser(client: AgentClient, name: str, request: str, why: str) -> int:
    """No native window: the same page in the default web browser. Its URL carries a one-time ticket,
    never the token (a browser's command line is visible to other users of this computer)."""
    ticket = client.post("/api/tickets", {})["ticket"]
    url = f"{client.base_url}/ui/{name}.html#ticket={ticket}&request={request}"
    log.warning("no window toolkit for the %s dialog (%s): opening it in the default web browser. For a "
                "window of its own, install GTK's or Qt's Python bindings (see the README).", name, why)
    if not webbrowser.open(url):
        raise TrayagentError(f"no window toolkit and no web browser to show the {name} dialog",
                             "Install GTK's or Qt's Python bindings, or a web browser.")
    return 0


def ui_folder() -> Path:
    return Path(__file__).with_name("pages")
