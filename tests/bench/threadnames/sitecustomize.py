"""Bench-only: each Python thread gets its ``threading`` name in the kernel too
(``/proc/PID/task/TID/comm``, 15 bytes), so ``bench_sync.py`` can count every thread's wake-ups
(``voluntary_ctxt_switches``) by name. Python 3.11 does not do this itself. The idle part of
``bench_sync.py`` puts this folder first on the ``PYTHONPATH`` of the trayagent it starts; nothing
in trayagent imports it."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

_PR_SET_NAME = 15

try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None

_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _named(self: threading.Thread) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_NAME, self.name.encode(errors="replace")[:15], 0, 0, 0)
    _bootstrap_inner(self)


threading.Thread._bootstrap_inner = _named  # type: ignore[attr-defined]
