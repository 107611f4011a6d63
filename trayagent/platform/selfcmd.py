"""How trayagent starts itself: dialogs, autostart, the desktop launcher and the agent all ask here.

Installed from a wheel, trayagent runs as ``python -m trayagent.cli``; frozen by PyInstaller,
``sys.executable`` is the bundle's own program, which takes trayagent's arguments directly (``-m``
would be read as an unknown option). On Windows the bundle has two programs: ``trayagent.exe`` for
the console and ``trayagentw.exe`` without one, for shortcuts, autostart and dialogs (a console program
started from Explorer opens a black window). Outside a bundle the console-less interpreter is
``pythonw.exe``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def frozen() -> bool:
    """Whether this is a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path | None:
    """The bundle's data folder (PyInstaller's ``_MEIPASS``: rclone, icons, pages), or None."""
    data = getattr(sys, "_MEIPASS", None)
    return Path(data) if frozen() and data else None


def self_command(*args: str, windowed: bool = False) -> list[str]:
    """The command line that runs trayagent with ``args``, frozen or not. ``windowed``: started from
    the desktop (no console window on Windows)."""
    exe = Path(sys.executable)
    if frozen():
        if windowed and sys.platform == "win32":
            exe = exe.with_name("trayagentw.exe")
        return [str(exe), *args]
    if windowed and sys.platform == "win32" and exe.name.lower() == "python.exe":
        exe = exe.with_name("pythonw.exe")
    return [str(exe), "-m", "trayagent.cli", *args]
