"""How trayagent's SQLite files (queue, local catalogue, SciCat block index) are closed, and how
their failures (a full disk, a damaged or emptied file) are told to the user.

All of them run in WAL mode with ``synchronous=NORMAL``: every commit is safe against a killed
process as soon as it returns, and reaches the disk with the kernel's writeback. Closing the last
connection adds a checkpoint, and its fsync waits until the disk has taken everything else that
was written lately. After a 1 GiB upload to a server on the same disk that wait measured 1-110 ms,
at the very end of `trayagent upload`. A command that ends with ``os._exit`` therefore leaves its
connections open (``end_without_checkpoint``): the WAL stays beside the file and the next opener
reads it, as after a kill, which the tests exercise. What it gives up is an fsync of the last
commits before the command returns, the same durability every other commit already has.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from pathlib import Path

from .errors import LocalStateError

log = logging.getLogger(__name__)

_left_open: list[sqlite3.Connection] = []
_skip_checkpoint = False


def end_without_checkpoint() -> None:
    """This process is about to end with ``os._exit``: connections closed from now on stay open
    until then (no close-time checkpoint)."""
    global _skip_checkpoint
    _skip_checkpoint = True


def close(conn: sqlite3.Connection) -> None:
    if _skip_checkpoint:
        _left_open.append(conn)  # referenced until the process ends, so never finalised
    else:
        conn.close()


def use_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Put ``conn``'s database in WAL mode, waiting out other processes doing the same.

    Switching the journal mode needs an exclusive lock that SQLite does not wait for: when two
    processes open a new database at the same moment (two uploads started together), one of them
    gets "database is locked" at once, whatever the busy timeout. Measured: 58 of 900 opens in
    300 three-process races. Once the file is in WAL mode the pragma only reads it."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == _SQLITE_BUSY or "database is locked" in str(exc)


# -- a full disk or a damaged file, in the user's terms ----------------------------------------------
_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)
_SQLITE_BUSY = getattr(sqlite3, "SQLITE_BUSY", 5)
_BEING_CREATED_S = 5.0
_SQLITE_DAMAGED = frozenset({getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)})


def local_state_error(exc: BaseException, data_dir: Path) -> LocalStateError | None:
    """trayagent's own state cannot be written (no space left: errno 28 from any file it writes,
    or SQLite's "database or disk is full") or a database under ``data_dir`` is damaged; None for
    anything else. SQLite rolls the failed transaction back, so the queue stays as it was."""
    if is_full(exc):
        filename = getattr(exc, "filename", None)
        writing = f" (writing {filename})" if filename else ""
        return LocalStateError(f"no space left on {_mount_point(Path(filename or data_dir))}{writing}: "
                               "free space, then run again",
                               "Nothing was lost: the queue holds what is done and what is left, and the "
                               "same command goes on from there.")
    if isinstance(exc, sqlite3.DatabaseError) and _is_damaged(exc):
        path = damaged_database(data_dir)
        aside = path.with_name(path.name + ".damaged")
        return LocalStateError(f"the database {path} is damaged ({exc})",
                               f"Move it aside (mv '{path}' '{aside}') and run the command again. "
                               "What storage and the catalogue already hold stays there; an upload "
                               "re-run with the same folders and dataset name rebuilds its queue.")
    return None


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc))


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _SQLITE_DAMAGED or any(
        words in str(exc) for words in ("malformed", "not a database"))


def damaged_database(data_dir: Path) -> Path:
    """Which of trayagent's databases fails SQLite's own check (the queue when none says so)."""
    for path in sorted(data_dir.glob("*.sqlite")):
        try:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            ok = False
        if not ok:
            return path
    return data_dir / "queue.sqlite"


def _mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (what the user must free space on)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def warn_if_emptied(path: Path) -> bool:
    """A database file of 0 bytes is not a new database: SQLite would silently start an empty one
    and whatever it held (interrupted uploads) would be forgotten without a word. Say so."""
    try:
        stat = path.stat()
    except OSError:
        return False
    # a file of 0 bytes written in the last seconds is a database another process is creating now
    emptied = stat.st_size == 0 and time.time() - stat.st_mtime > _BEING_CREATED_S
    if emptied:
        log.warning("%s is empty (0 bytes): what it held is lost (a full disk, or a crash of the "
                    "machine while it was written?). A new one is started; re-run the uploads that "
                    "were unfinished (`trayagent status` shows only what is known from now on).", path)
    return emptied
