"""Logging: a rotating file in the log folder for everything, the terminal for warnings only.

Secrets never reach a log: every record passes the same redactor that masks rclone's output.
rclone's own lines go to the file only (``-v`` shows them): whatever fails reaches the user once, as
trayagent's message, not also as rclone's raw line (a flaky server printed each failure twice).
A log file that cannot be written (full disk) is said once on the terminal, not with a traceback
per record.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
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


RCLONE_LOGGER = "trayagent.rclone.process"


class _NotRclone(logging.Filter):
    """For the terminal: rclone's own lines stay in the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(RCLONE_LOGGER)


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file; when it cannot be written (no space left, read-only), one line says so."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # logging's own name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        if not _LogFile.failed:
            _LogFile.failed = True
            print(f"trayagent: cannot write the log file {self.baseFilename} ({exc.strerror or exc}); "
                  "going on without it", file=sys.stderr)


def setup_logging(log_file: Path, redact: Callable[[str], str], *, console_level: int = logging.WARNING,
                  verbose: bool = False) -> None:
    """Idempotent: a second call (tests, agent restarts in-process) replaces the handlers."""
    root = logging.getLogger("trayagent")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = _LogFile(log_file, maxBytes=10 << 20, backupCount=5,
                                                        encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else console_level)
    console.setFormatter(logging.Formatter("trayagent: %(levelname)s: %(message)s"))
    if not verbose:
        console.addFilter(_NotRclone())
    for handler in (file_handler, console):
        handler.addFilter(_Redact(redact))
        root.addHandler(handler)
    root.propagate = False
