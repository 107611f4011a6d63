"""The status icons (package data): one PNG and one ICO per tray state and for the application."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path


def icon_file(state: str, suffix: str = ".png") -> Path:
    """The icon of ``state``: package data (trayagent/icons), else the source tree's assets/."""
    name = f"{state}{suffix}"
    packaged = resources.files(__name__).joinpath(name)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "assets" / name


def app_icon() -> Path | None:
    """The application's icon as notifications carry it (Windows balloons need .ico)."""
    icon = icon_file("trayagent", ".ico" if sys.platform == "win32" else ".png")
    return icon if icon.is_file() else None
