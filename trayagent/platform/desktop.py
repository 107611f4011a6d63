"""Desktop integration: the launcher that folders are dropped on.

Tray icons accept no drops on any platform, so the launcher is the drop target: dropping folders on
it (in the application menu, on a dock or the desktop) starts ``trayagent open PATHS``, which hands the
paths to the running agent (it opens the Dataset dialog prefilled) or starts the agent first.

Linux: ``install_desktop()`` writes a freedesktop.org ``.desktop`` entry (``Exec=... open %F``) into
``$XDG_DATA_HOME/applications`` and the icon into ``$XDG_DATA_HOME/icons/hicolor/64x64/apps``. The
entry runs this very interpreter (``python -m trayagent.cli open %F``), so it works from a virtualenv
that is not on PATH. ``build/trayagent.desktop`` is the same entry for distribution packages, with
``Exec=trayagent open %F``. The entry declares no ``MimeType``: ``%F`` alone makes it a drop target
(docks, desktops, file managers pass dropped paths to any launcher whose Exec takes files), while
``MimeType=inode/directory`` made it a handler for folders, and with no other file manager set as
the default, ``xdg-open FOLDER`` (e.g. "Open log folder") opened a New dataset dialog.

Windows: nothing to install here. Explorer passes the paths of items dropped on a shortcut as
command-line arguments, so the Start-menu/desktop shortcut the installer creates (target
``pythonw.exe -m trayagent.cli open``, or ``trayagent.exe open``) is the drop target, with
``trayagent.ico`` (package data, ``trayagent/icons``) as its icon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..icons import icon_file
from .selfcmd import self_command

ENTRY = """[Desktop Entry]
Type=Application
Version=1.4
Name=trayagent
GenericName=Beamline data upload
Comment=Upload folders to facility storage and register them in the data catalogue (drop folders here)
Exec={exec}
{try_exec}Icon=trayagent
Terminal=false
Categories=Network;FileTransfer;
Keywords=upload;dataset;beamline;catalogue;SciCat;rclone;
StartupNotify=false
StartupWMClass=trayagent
"""


def exec_arg(arg: str) -> str:
    """Quote one Exec argument per the Desktop Entry spec (then escape it as a string value)."""
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`='):
        quoted = arg
    else:
        quoted = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
    return quoted.replace("\\", "\\\\").replace("%", "%%")


def desktop_entry(command: list[str] | None = None) -> str:
    """The launcher; ``command`` is what runs (default: this interpreter with trayagent's CLI)."""
    command = command or self_command(windowed=True)
    try_exec = f"TryExec={command[0]}\n".replace("\\", "\\\\")
    return ENTRY.format(exec=" ".join(exec_arg(a) for a in command) + " open %F", try_exec=try_exec)


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def install_desktop(base: Path | None = None) -> list[Path]:
    """Install the launcher and its icon for this user; returns the files written."""
    if sys.platform == "win32":
        return []   # the installer's shortcut is the launcher (see the module docstring)
    base = base or data_home()
    entry = base / "applications" / "trayagent.desktop"
    icon = base / "icons" / "hicolor" / "64x64" / "apps" / "trayagent.png"
    entry.parent.mkdir(parents=True, exist_ok=True)
    icon.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(".tmp")
    tmp.write_text(desktop_entry(), encoding="utf-8")
    tmp.chmod(0o755)   # some desktops only trust executable launchers
    os.replace(tmp, entry)
    shutil.copyfile(icon_file("trayagent"), icon)
    _refresh_caches(entry.parent, base / "icons" / "hicolor")
    return [entry, icon]


def _refresh_caches(applications: Path, hicolor: Path) -> None:
    """Best effort: the MIME association cache and the icon cache, when the tools exist."""
    for tool, args in (("update-desktop-database", [str(applications)]),
                       ("gtk-update-icon-cache", ["-q", "-t", "-f", str(hicolor)])):
        if exe := shutil.which(tool):
            subprocess.run([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, timeout=30)
