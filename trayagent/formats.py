"""How trayagent writes sizes and times, in one place: the same figures in the CLI's bar, the tray's
tooltip and the notifications; the same UTC timestamps in both catalogues and the manifest."""

from __future__ import annotations

import datetime as dt


def human_bytes(n: float) -> str:
    """Decimal units, as storage vendors and file managers count: ``1.5 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def rfc3339(seconds: float | None = None, timespec: str = "milliseconds") -> str:
    """``seconds`` since the epoch (default: now) as RFC 3339 UTC, e.g. ``2026-01-23T10:15:00.123Z``.
    Raises OverflowError, OSError or ValueError for a time the platform cannot represent."""
    moment = dt.datetime.now(dt.UTC) if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
