"""Start the agent at login: XDG autostart on Linux, the per-user Run key on Windows.

One small contract (``enabled``/``set``), one implementation per platform, chosen in ``autostart()``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path
from typing import Protocol

from .selfcmd import self_command

ENTRY = """[Desktop Entry]
Type=Application
Name=trayagent
Comment=Upload beamline data to facility storage and catalogue
Exec={command}
Icon=trayagent
Terminal=false
X-GNOME-Autostart-enabled=true
"""


class Autostart(Protocol):
    def enabled(self) -> bool: ...
    def set(self, on: bool) -> None: ...


def agent_command() -> list[str]:
    """How to start the agent from a login session: this installation of trayagent (frozen or not)."""
    return self_command("agent", windowed=True)


class XdgAutostart:
    def __init__(self, config_home: Path | None = None) -> None:
        base = config_home or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = base / "autostart" / "trayagent.desktop"

    def enabled(self) -> bool:
        return self.path.is_file()

    def set(self, on: bool) -> None:
        if on:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(ENTRY.format(command=shlex.join(agent_command())), encoding="utf-8")
        else:
            self.path.unlink(missing_ok=True)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import subprocess
    import winreg

    class WindowsRunKey:
        KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"

        def enabled(self) -> bool:
            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.KEY) as key:
                    winreg.QueryValueEx(key, "trayagent")
                    return True
            except OSError:
                return False

        def set(self, on: bool) -> None:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.KEY, 0, winreg.KEY_SET_VALUE) as key:
                if on:
                    winreg.SetValueEx(key, "trayagent", 0, winreg.REG_SZ, subprocess.list2cmdline(agent_command()))
                else:
                    with contextlib.suppress(OSError):
                        winreg.DeleteValue(key, "trayagent")


def autostart() -> Autostart:
    if sys.platform == "win32":
        return WindowsRunKey()
    return XdgAutostart()
