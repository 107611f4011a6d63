"""Dialog windows: each dialog is a web page of the agent, shown by pywebview in its own process.

Why a process per dialog: pywebview wants the main thread, and so does the tray on some platforms.
The dialog process reads the control token from the 0600 file itself (it never travels on a
command line) and hands it to the page in the URL fragment, which is never sent over the wire.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .client import AgentClient
from .errors import TrayagentError
from .paths import Paths

log = logging.getLogger(__name__)

TITLES = {"dataset": "trayagent: Dataset", "activity": "trayagent: Activity", "login": "trayagent: Log in",
          "settings": "trayagent: Settings"}
SIZES = {"dataset": (760, 760), "activity": (760, 620), "login": (420, 380), "settings": (640, 680)}


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
        cmd = [sys.executable, "-m", "trayagent.cli", "dialog", name, "--request", str(params.get("request", ""))]
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self.children.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, creationflags=flags,
                                              env=dict(os.environ)))
        log.info("opened the %s dialog", name)


def dialog_url(client: AgentClient, token: str, name: str, request: str) -> str:
    return f"{client.base_url}/ui/{name}.html#token={token}&request={request}"


class _Bridge:
    """What the page may ask of its native window (pywebview's ``js_api``): close it, pick paths.

    Attributes start with ``_`` so pywebview does not expose them to the page.
    """

    def __init__(self) -> None:
        self._window: Any = None

    def close(self) -> None:
        if self._window is not None:
            self._window.destroy()

    def pick(self, folders: bool = True) -> list[str]:
        """The native chooser: folders (or files) to add to a dataset; [] when cancelled."""
        import webview

        kind = webview.FileDialog.FOLDER if folders else webview.FileDialog.OPEN
        chosen = self._window.create_file_dialog(kind, allow_multiple=True) if self._window else None
        return [str(p) for p in chosen or []]


def _watch_drops(window: Any) -> None:
    """Dropped folders: only pywebview's Python-side DOM handler learns their full paths; pass them on."""
    import json

    from webview.dom import DOMEventHandler

    def on_drop(event: dict[str, Any]) -> None:
        files = (event.get("dataTransfer") or {}).get("files") or []
        paths = [f["pywebviewFullPath"] for f in files if f.get("pywebviewFullPath")]
        if paths:
            window.evaluate_js(f"window.trayagentDropped && window.trayagentDropped({json.dumps(paths)})")

    def on_loaded(*_: Any) -> None:
        try:
            zone = window.dom.get_element("#dropzone")
            if zone is not None:
                zone.events.drop += DOMEventHandler(on_drop, prevent_default=True)
        except Exception:  # noqa: BLE001 - a backend without DOM events: typing paths still works
            log.debug("no drop support in this pywebview backend", exc_info=True)

    window.events.loaded += on_loaded


def show_dialog(paths: Paths, name: str, request: str) -> int:
    """Run one dialog window until it is closed (blocks; needs the main thread)."""
    client = AgentClient.find(paths.runtime_dir)
    if client is None:
        raise TrayagentError("the trayagent agent is not running", "Start it with `trayagent`.")
    token = (paths.runtime_dir / "agent.token").read_text(encoding="utf-8").strip()
    import webview

    width, height = SIZES[name]
    bridge = _Bridge()
    window = webview.create_window(TITLES[name], dialog_url(client, token, name, request), width=width,
                                   height=height, min_size=(360, 300), js_api=bridge,
                                   background_color="#F6F7F9")
    bridge._window = window
    if name == "dataset":
        _watch_drops(window)
    webview.start(gui=os.environ.get("TRAYAGENT_WEBVIEW_GUI") or None, private_mode=True)
    return 0


def ui_folder() -> Path:
    return Path(__file__).with_name("ui")
