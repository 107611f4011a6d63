"""Logging: one file per process in the log folder for everything, the terminal for warnings only.

Why one file per process: the agent, each CLI command and each dialog run side by side, and a log file
shared between processes cannot be rotated safely (Python's rotating handlers assume one writer; on
Windows the rename fails while another process holds the file open). So each process writes
``<command>-<YYYYmmdd-HHMMSS>-<pid>.log`` and rotates only its own file; the file is created on the
first record, so a command that logs nothing leaves nothing. Old files of ended processes are pruned at
start-up (see ``prune_logs``).

Secrets never reach a log: every record passes the same redactor that masks rclone's output.
rclone's own lines go to the file only (``-v`` shows them): whatever fails reaches the user once, as
trayagent's message, not also as rclone's raw line (a flaky server printed each failure twice).
A log file that cannot be written (full disk) is said once on the terminal, not with a traceback
per record.

Why repeats are folded (``logfold.py``): while storage is down, each retry cycle says the same
things again, each time about another file (rclone's echo of the failed read-back, "cannot read back
the stored files yet", the retry notice "FILE: ...; retry in 1.9 s (attempt 3)"), for as long as the
outage lasts. The file gets the first line of each kind in full, then the latest one with how many
more there were: with the first record after each minute in which they kept coming, and when the
file is closed. Folded are rclone's lines (all but its per-file "Copied" lines: ``rclonelog.py``
marks the records) and trayagent's records logged with ``extra=FOLD`` (its retry notices). Everything
else, every ERROR of trayagent's own and every traceback, is written as it comes. The terminal is not
folded: it shows trayagent's warnings as they come.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .logfold import Held, RepeatCollapser, more_like_it, repeat_key

_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(name)s: %(message)s"
KEEP_DAYS = 14      # files of ended processes older than this go
KEEP_FILES = 200    # and beyond this many, the oldest go first
MAX_BYTES = 10 << 20
# extra={COLLAPSE: True}: a record whose repeats (same logger, level and words) may be folded
COLLAPSE = "collapse"
FOLD = {COLLAPSE: True}  # log.warning(..., extra=FOLD): notices that recur while a problem lasts (retries)


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


class _Formatter(logging.Formatter):
    """Several of rclone's lines in one record (``lines``, read from its pipe together) come out
    as if logged one by one: each line with the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if getattr(record, "lines", 1) < 2 or not text.endswith(record.message):
            return text
        head = text[: len(text) - len(record.message)]
        return head + record.message.replace("\n", "\n" + head)


def _repeat_key(record: logging.LogRecord) -> str | None:
    """The kind of a trayagent record that may be folded with its repeats, else None: records
    marked ``COLLAPSE`` (retry notices and the like), never one with a traceback. A format
    that starts with "%s: " names its subject (a file) first: notices about different files are of
    one kind. (rclone's records are folded line by line: ``_LogFile._fold_rclone``.)"""
    if record.exc_info or not getattr(record, COLLAPSE, False):
        return None
    template = record.msg if isinstance(record.msg, str) else ""
    return f"{record.name}:{record.levelno}:{repeat_key(record.getMessage(), template.startswith('%s: '))}"


def _with_message(record: logging.LogRecord, message: str, **extra: object) -> logging.LogRecord:
    """A copy of ``record`` saying ``message`` (made now: a held record's arguments may change later)."""
    return logging.makeLogRecord({**record.__dict__, "msg": message, "args": None, **extra})


def _summary(held: Held[logging.LogRecord]) -> logging.LogRecord:
    """The latest held-back record, saying how many there were: written as a record of now."""
    now = time.time()
    return _with_message(held.last, more_like_it(held.last.msg, held.count, held.since), created=now,
                         msecs=now % 1 * 1000)


class _LogFile(logging.handlers.RotatingFileHandler):
    """This process's log file; when it cannot be written (no space left, read-only), one line says so.
    Repeats are folded (see the module's docstring); what is held back is written by ``close`` at
    the latest, which ``logging.shutdown`` calls even on the fast exit (``os._exit``) of a command."""

    failed = False

    def __init__(self, filename: Path) -> None:
        # created on the first record: a command that logs nothing leaves no file
        super().__init__(filename, maxBytes=MAX_BYTES, backupCount=1, encoding="utf-8", delay=True)
        self.repeats: RepeatCollapser[logging.LogRecord] = RepeatCollapser()

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        try:
            if record.name.startswith(RCLONE_LOGGER):
                kept = self._fold_rclone(record) if getattr(record, COLLAPSE, False) else record
            else:
                key = _repeat_key(record)
                kept = record if key is None or self.repeats.offer(key, _with_message(record, record.getMessage()),
                                                                  record.created) else None
            due = self.repeats.due(record.created)
        except Exception:  # a record that cannot be formatted: reported as logging does, not raised
            self.handleError(record)
            return
        if kept is not None:
            super().emit(kept)
        for held in due:
            super().emit(_summary(held))

    def _fold_rclone(self, record: logging.LogRecord) -> logging.LogRecord | None:
        """rclone's lines of one record (see ``rclonelog``) without those that repeat an earlier
        one; None when all do. rclone's "path: message" names the file first."""
        lines = record.getMessage().split("\n")
        kept = [line for line in lines
                if self.repeats.offer(f"{record.name}:{record.levelno}:{repeat_key(line)}",
                                      _with_message(record, line, lines=1), record.created)]
        if len(kept) == len(lines):
            return record
        return _with_message(record, "\n".join(kept), lines=len(kept)) if kept else None

    def close(self) -> None:
        """The counts still held go out before the file closes (process exit, new set-up)."""
        with self.lock or contextlib.nullcontext():
            held, self.repeats = self.repeats.drain(), RepeatCollapser()
            for h in held:
                super().emit(_summary(h))
        super().close()

    def handleError(self, record: logging.LogRecord) -> None:  # logging's own name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        if not _LogFile.failed:
            _LogFile.failed = True
            print(f"trayagent: cannot write the log file {self.baseFilename} ({exc.strerror or exc}); "
                  "going on without it", file=sys.stderr)


def log_file_for(log_dir: Path, command: str, pid: int | None = None, now: float | None = None) -> Path:
    """This process's file: the command, the start time and the pid make it unique and easy to find."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return log_dir / f"{command}-{stamp}-{os.getpid() if pid is None else pid}.log"


def setup_logging(log_file: Path, redact: Callable[[str], str], *, console_level: int = logging.WARNING,
                  verbose: bool = False) -> None:
    """Idempotent: a second call (tests, agent restarts in-process) replaces the handlers.
    ``log_file`` is this process's own (``log_file_for``): it is rotated, once, by this process only."""
    root = logging.getLogger("trayagent")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = _LogFile(log_file)
    file_handler.setFormatter(_Formatter(_FORMAT))
    console = logging.StreamHandler()
    console.setLevel(logging.DEBUG if verbose else console_level)
    console.setFormatter(_Formatter("trayagent: %(levelname)s: %(message)s"))
    if not verbose:
        console.addFilter(_NotRclone())
    for handler in (file_handler, console):
        handler.addFilter(_Redact(redact))
        root.addHandler(handler)
    root.propagate = False


def prune_logs(log_dir: Path, keep_days: float = KEEP_DAYS, keep_files: int = KEEP_FILES) -> list[Path]:
    """Remove the files of ended processes that are old, or beyond the newest ``keep_files``.
    A running process's file stays: on POSIX its pid is checked; on Windows an open file cannot be
    deleted, and the failure is ignored. Returns the files removed."""
    try:
        entries = sorted(((e.stat().st_mtime, Path(e.path)) for e in os.scandir(log_dir)
                          if e.name.endswith((".log", ".log.1")) and e.is_file()), reverse=True)
    except OSError:
        return []
    cutoff = time.time() - keep_days * 86400
    removed = []
    for rank, (mtime, path) in enumerate(entries):
        if (mtime < cutoff or rank >= keep_files) and not _running(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _running(path: Path) -> bool:
    """Whether the process that writes ``path`` still runs (its pid is the name's last part)."""
    pid = path.name.split(".", 1)[0].rsplit("-", 1)[-1]
    if not pid.isdigit() or sys.platform == "win32":  # Windows: deleting an open file fails instead
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
