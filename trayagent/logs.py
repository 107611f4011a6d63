"""Logging: a rotating file in the log folder for everything, the terminal for warnings only.

Secrets never reach a log: every record passes the same redactor that masks rclone's output.
"""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Callable
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _Redact(logging.Filter):
    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup_logging(log_file: Path, redact: Callable[[str], str], *, console_level: int = logging.WARNING,
                  verbose: bool = False) -> None:
    """Idempotent: a second call (tests, agent restarts in-process) replaces the handlers."""
    root = logging.getLogger("trayagent")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10 << 20, backupCount=5,
                                                        encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else console_level)
    console.setFormatter(logging.Formatter("trayagent: %(levelname)s: %(message)s"))
    for handler in (file_handler, console):
        handler.addFilter(_Redact(redact))
        root.addHandler(handler)
    root.propagate = False
