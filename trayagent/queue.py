"""The durable upload queue: every dataset and file, and how far each has got, in SQLite (WAL).

Why a database and not objects: the process may be killed at any instant. Each state change is
committed *before* the work it allows starts, so a restart reads exactly what is left to do:

    pending -> uploading -> uploaded -> verified -> registered
        \\________\\___________\\___________> failed (permanent error, with the reason)

``uploading`` rows found at start-up were interrupted: they go back to ``pending``, marked
``maybe_stored``, and the batch that sends them again first asks storage what it already holds, so
the files a crash found complete are not sent twice (see ``Transfer.copy_batch``). Only
``verified`` rows are ever handed to the catalogue, so nothing unverified is registered. Transient
errors keep a row ``pending`` with a ``next_retry`` time; permanent ones mark it ``failed`` with
``last_error``.

Memory stays flat whatever the dataset size: callers enqueue and fetch in bounded batches.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from . import sqlitedb
from .errors import TrayagentError


class State(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    VERIFIED = "verified"
    REGISTERED = "registered"
    FAILED = "failed"


class DatasetState(StrEnum):
    ACTIVE = "active"       # files still to scan, copy, verify or register
    COMPLETE = "complete"   # manifest written, catalogue entry finished
    CANCELLED = "cancelled"  # the user's Cancel: what was not yet sent left the queue (an upload starts it again)


class Mode(StrEnum):
    BATCH = "batch"         # a fixed set of files, uploaded once
    SYNC = "sync"           # folders watched while acquisition writes into them


class SessionState(StrEnum):
    RUNNING = "running"     # watching (restored after a restart)
    STOPPED = "stopped"     # the user stopped watching; queued files stay queued
    FINALIZE = "finalize"   # finishing requested: the owner process stops watching and completes
    FINALIZED = "finalized"  # the dataset is complete


_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,              -- JSON of the DatasetSpec
    mode TEXT NOT NULL DEFAULT 'batch',
    storage_url TEXT NOT NULL,       -- secret-free description of the storage
    storage_path TEXT NOT NULL,      -- dataset folder under the storage root
    catalogue_kind TEXT NOT NULL,
    catalogue_id TEXT,               -- id the catalogue gave the dataset, once created
    state TEXT NOT NULL DEFAULT 'active',   -- active | complete | cancelled
    scan_done INTEGER NOT NULL DEFAULT 0,
    manifest_done INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    finished REAL,
    catalogue_url TEXT NOT NULL DEFAULT '',  -- which catalogue of that kind (SciCat's URL)
    config TEXT NOT NULL DEFAULT '',         -- the configuration file it was defined with ('' = default)
    UNIQUE (storage_url, storage_path)
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets(id),
    src_root TEXT NOT NULL,          -- local folder rclone reads from
    src_rel TEXT NOT NULL,           -- path under src_root
    relpath TEXT NOT NULL,           -- path under the dataset folder in storage (POSIX)
    size INTEGER,                    -- as seen by the scan, then when the checksum was computed
    mtime_ns INTEGER,
    checksum TEXT,
    algorithm TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    verification TEXT,               -- 'hash' or 'size'
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_retry REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    maybe_stored INTEGER NOT NULL DEFAULT 0,  -- its upload was interrupted: storage may hold it already
    UNIQUE (dataset_id, relpath)
);
CREATE INDEX IF NOT EXISTS files_work ON files (dataset_id, state, next_retry);
-- work in queue order without sorting every matching row (Queue.due, iter_files)
CREATE INDEX IF NOT EXISTS files_order ON files (dataset_id, state, id);
-- the latest errors (status, the agent), found without reading every file
CREATE INDEX IF NOT EXISTS files_errors ON files (updated) WHERE last_error IS NOT NULL;
-- files and bytes per dataset and state, kept by the triggers below in the transaction that changes
-- a file: status, progress and the agent's housekeeping read a few rows, whatever the file count
CREATE TABLE IF NOT EXISTS file_counts (
    dataset_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    files INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset_id, state)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS file_counts_insert AFTER INSERT ON files BEGIN
    INSERT INTO file_counts (dataset_id, state, files, bytes) VALUES (new.dataset_id, new.state, 1,
        COALESCE(new.size, 0)) ON CONFLICT (dataset_id, state) DO UPDATE SET files=files+1,
        bytes=bytes+COALESCE(new.size, 0);
END;
CREATE TRIGGER IF NOT EXISTS file_counts_update AFTER UPDATE OF state, size, dataset_id ON files BEGIN
    UPDATE file_counts SET files=files-1, bytes=bytes-COALESCE(old.size, 0)
        WHERE dataset_id=old.dataset_id AND state=old.state;
    INSERT INTO file_counts (dataset_id, state, files, bytes) VALUES (new.dataset_id, new.state, 1,
        COALESCE(new.size, 0)) ON CONFLICT (dataset_id, state) DO UPDATE SET files=files+1,
        bytes=bytes+COALESCE(new.size, 0);
END;
CREATE TRIGGER IF NOT EXISTS file_counts_delete AFTER DELETE ON files BEGIN
    UPDATE file_counts SET files=files-1, bytes=bytes-COALESCE(old.size, 0)
        WHERE dataset_id=old.dataset_id AND state=old.state;
END;
CREATE TABLE IF NOT EXISTS sessions (
    dataset_id INTEGER PRIMARY KEY REFERENCES datasets(id),
    sources TEXT NOT NULL,           -- JSON [{root, prefix, only}]
    filters TEXT NOT NULL,           -- JSON {include, exclude}
    state TEXT NOT NULL DEFAULT 'running',  -- running | stopped | finalize (requested) | finalized
    waiting INTEGER NOT NULL DEFAULT 0,     -- files seen but not yet complete
    watch TEXT NOT NULL DEFAULT '',  -- events | polling | none, per folder
    warning TEXT,
    pid INTEGER,
    updated REAL NOT NULL
);
"""

# Columns added after the first release: (table, column, definition) for queues made before them.
_ADDED = (("datasets", "catalogue_url", "TEXT NOT NULL DEFAULT ''"),
          ("datasets", "config", "TEXT NOT NULL DEFAULT ''"),
          ("files", "maybe_stored", "INTEGER NOT NULL DEFAULT 0"))


# A queue written before ``file_counts`` existed: its counters are filled once from the rows, in the
# transaction that creates the table and its triggers (user_version 1 marks them as kept since).
_COUNTS_FROM_ROWS = """
INSERT INTO file_counts (dataset_id, state, files, bytes)
    SELECT dataset_id, state, COUNT(*), COALESCE(SUM(size), 0) FROM files
    WHERE (SELECT user_version FROM pragma_user_version) < 1 GROUP BY dataset_id, state;
PRAGMA user_version = 1;
"""


class QueuedFile(NamedTuple):
    """One row of ``files``, as the pipeline stages see it. A named tuple, not a dataclass: every
    file is read as one three times on its way (to send, to verify, to register), and a frozen
    dataclass took five times as long to build."""

    id: int
    dataset_id: int
    src_root: str
    src_rel: str
    relpath: str
    size: int | None
    mtime_ns: int | None
    checksum: str | None
    algorithm: str | None
    state: State
    verification: str | None
    attempts: int
    last_error: str | None
    maybe_stored: bool = False

    @property
    def local_path(self) -> Path:
        return Path(self.src_root) / self.src_rel

    @property
    def local_file(self) -> str:
        """The same path as a string, for the stat calls made per file: a ``Path`` costs several
        times the stat itself."""
        return os.path.join(self.src_root, self.src_rel)


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    spec: dict[str, Any]
    mode: Mode
    storage_url: str
    storage_path: str
    catalogue_kind: str
    catalogue_id: str | None
    state: DatasetState
    scan_done: bool
    manifest_done: bool
    created: float
    finished: float | None
    catalogue_url: str = ""
    config: str = ""


@dataclass(frozen=True)
class Session:
    """One row of ``sessions``: a sync dataset's folders, filters and watch state."""

    dataset_id: int
    sources: list[dict[str, Any]]
    filters: dict[str, list[str]]
    state: SessionState
    waiting: int
    watch: str
    warning: str | None
    pid: int | None


@dataclass(frozen=True)
class NewFile:
    """A file found by the scanner: where it is read from and where it goes."""

    src_root: str
    src_rel: str
    relpath: str
    size: int
    mtime_ns: int


class QueueError(TrayagentError):
    """The queue database cannot be opened or is damaged."""

    exit_code = 2


class Queue:
    """Thread-safe access to the queue database; one short transaction per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        sqlitedb.warn_if_emptied(path)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            sqlitedb.use_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}{_COUNTS_FROM_ROWS}COMMIT;")
            self._add_columns()
        except sqlite3.DatabaseError as exc:
            if sqlitedb.is_full(exc) and (full := sqlitedb.local_state_error(exc, path.parent)):
                raise full from exc  # not damage: free space and run again
            raise QueueError(f"the queue database {path} cannot be used ({exc})",
                             "Move the file aside (uploads already finished stay in storage and the "
                             "catalogue) and run the command again.") from exc

    def _add_columns(self) -> None:
        """A queue written by an older trayagent gains the newer columns (with their defaults)."""
        for table, column, definition in _ADDED:
            have = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            sqlitedb.close(self._db)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction: WAL + synchronous=NORMAL survives a process kill."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- datasets -------------------------------------------------------------------------------
    def ensure_dataset(self, *, name: str, spec: dict[str, Any], mode: Mode, storage_url: str,
                       storage_path: str, catalogue_kind: str, catalogue_url: str = "",
                       config: str = "") -> Dataset:
        """The dataset for this storage location, created once; re-running re-activates it.

        Re-activating resets ``scan_done``: call it only while holding the dataset's lock
        (``Uploader.record``), or a run that is finishing the dataset waits for a scan that
        nobody makes."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT id FROM datasets WHERE storage_url=? AND storage_path=?",
                             (storage_url, storage_path)).fetchone()
            if row is None:
                db.execute("INSERT INTO datasets (name, spec, mode, storage_url, storage_path, "
                           "catalogue_kind, catalogue_url, config, created) VALUES (?,?,?,?,?,?,?,?,?)",
                           (name, json.dumps(spec), mode, storage_url, storage_path, catalogue_kind,
                            catalogue_url, config, now))
            else:
                # ``finished`` stays only on a complete dataset asked for again as it was: if the scan
                # then queues nothing, it is complete as it stands (Engine.enqueue)
                db.execute("UPDATE datasets SET state='active', scan_done=0, manifest_done=0, finished=CASE"
                           " WHEN state='complete' AND mode=?2 AND spec=?3 THEN finished END, mode=?2, spec=?3"
                           " WHERE id=?1", (row["id"], mode, json.dumps(spec)))
        return self.find_dataset(storage_url, storage_path)  # type: ignore[return-value]

    def find_dataset(self, storage_url: str, storage_path: str) -> Dataset | None:
        rows = self._rows("SELECT * FROM datasets WHERE storage_url=? AND storage_path=?",
                          (storage_url, storage_path))
        return _dataset(rows[0]) if rows else None

    def dataset(self, dataset_id: int) -> Dataset:
        rows = self._rows("SELECT * FROM datasets WHERE id=?", (dataset_id,))
        if not rows:
            raise QueueError(f"no dataset with id {dataset_id} in the queue")
        return _dataset(rows[0])

    def datasets(self, state: DatasetState | None = None) -> list[Dataset]:
        if state:
            return [_dataset(r) for r in self._rows("SELECT * FROM datasets WHERE state=? ORDER BY id",
                                                     (state,))]
        return [_dataset(r) for r in self._rows("SELECT * FROM datasets ORDER BY id")]

    def set_dataset(self, dataset_id: int, **fields: Any) -> None:
        allowed = {"catalogue_id", "state", "scan_done", "manifest_done", "finished"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot set {sorted(set(fields) - allowed)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE datasets SET {cols} WHERE id=?", (*fields.values(), dataset_id))

    # -- enqueue --------------------------------------------------------------------------------
    def enqueue(self, dataset_id: int, files: Iterable[NewFile]) -> int:
        """Insert new files; a known file whose size or mtime changed goes back to pending.

        Returns how many rows became pending. Unchanged files keep their state, so re-running an
        upload only sends what is new or changed.
        """
        now = time.time()
        with self._tx() as db:
            # rowcount, not total_changes: the counters' triggers change rows too
            cur = db.executemany(
                "INSERT INTO files (dataset_id, src_root, src_rel, relpath, state, updated, size, mtime_ns)"
                " VALUES (?,?,?,?,'pending',?,?,?)"
                " ON CONFLICT (dataset_id, relpath) DO UPDATE SET"
                "  src_root=excluded.src_root, src_rel=excluded.src_rel, state='pending', checksum=NULL,"
                "  size=excluded.size, mtime_ns=excluded.mtime_ns, verification=NULL, attempts=0,"
                "  last_error=NULL, next_retry=0, maybe_stored=0, updated=excluded.updated"
                " WHERE files.state='failed' OR files.size IS NOT excluded.size"
                "  OR files.mtime_ns IS NOT excluded.mtime_ns",
                [(dataset_id, f.src_root, f.src_rel, f.relpath, now, f.size, f.mtime_ns) for f in files])
            return max(cur.rowcount, 0)

    def recover_interrupted(self, dataset_id: int) -> int:
        """After a crash: uploads that were in flight are simply done again. Per dataset, because
        another process may own another dataset's uploads right now."""
        with self._tx() as db:
            cur = db.execute("UPDATE files SET state='pending', maybe_stored=1, updated=? "
                             "WHERE state='uploading' AND dataset_id=?", (time.time(), dataset_id))
            return cur.rowcount

    # -- sync sessions --------------------------------------------------------------------------
    def save_session(self, dataset_id: int, sources: list[dict[str, Any]], filters: dict[str, Any],
                     state: SessionState = SessionState.RUNNING) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO sessions (dataset_id, sources, filters, state, updated) VALUES (?,?,?,?,?)"
                       " ON CONFLICT (dataset_id) DO UPDATE SET sources=excluded.sources,"
                       " filters=excluded.filters, state=excluded.state, updated=excluded.updated",
                       (dataset_id, json.dumps(sources), json.dumps(filters), state, time.time()))

    def update_session(self, dataset_id: int, **fields: Any) -> None:
        allowed = {"state", "waiting", "watch", "warning", "pid"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot set {sorted(set(fields) - allowed)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE sessions SET {cols}, updated=? WHERE dataset_id=?",
                       (*fields.values(), time.time(), dataset_id))

    def sessions(self, *states: SessionState) -> list[Session]:
        """The sync sessions (in any of ``states``, or all), oldest dataset first."""
        sql, args = "SELECT * FROM sessions", tuple[str, ...]()
        if states:
            sql, args = sql + f" WHERE state IN ({','.join('?' * len(states))})", tuple(states)
        return [_session(r) for r in self._rows(sql + " ORDER BY dataset_id", args)]

    def recent_files(self, dataset_id: int, limit: int = 10) -> list[QueuedFile]:
        rows = self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE dataset_id=? AND state='registered' "
                          "ORDER BY updated DESC LIMIT ?", (dataset_id, limit))
        return [_file(r) for r in rows]

    def last_registered(self, dataset_id: int) -> float | None:
        rows = self._rows("SELECT MAX(updated) AS t FROM files WHERE dataset_id=? AND state='registered'",
                          (dataset_id,))
        when: float | None = rows[0]["t"]
        return when

    # -- fetching work --------------------------------------------------------------------------
    def due(self, dataset_id: int, state: State, limit: int, now: float | None = None) -> list[QueuedFile]:
        """Up to ``limit`` files in ``state`` whose retry time has come, oldest first."""
        now = time.time() if now is None else now
        # in id order straight from the index: SQLite's own choice (files_work, on the retry time)
        # sorted every matching row first, 105 ms per batch at a million files
        rows = self._rows(f"SELECT {_FILE_COLUMNS} FROM files INDEXED BY files_order WHERE dataset_id=? AND state=? "
                          "AND next_retry<=? ORDER BY id LIMIT ?", (dataset_id, state.value, now, limit))
        return [_file(r) for r in rows]

    def next_retry_time(self, dataset_id: int) -> float | None:
        """When the earliest waiting pending file becomes due, or None if none waits."""
        rows = self._rows("SELECT MIN(next_retry) AS t FROM files WHERE dataset_id=? AND state='pending'",
                          (dataset_id,))
        when: float | None = rows[0]["t"]
        return when

    def files(self, dataset_id: int, state: State | None = None) -> list[QueuedFile]:
        if state is None:
            return [_file(r) for r in self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE dataset_id=? ORDER BY id",
                                                 (dataset_id,))]
        return [_file(r) for r in self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE dataset_id=? AND state=? "
                                             "ORDER BY id", (dataset_id, state.value))]

    def iter_files(self, dataset_id: int, state: State, page: int = 5000) -> Iterator[QueuedFile]:
        """All files in ``state``, fetched a page at a time (for manifests of huge datasets)."""
        last = 0
        while True:
            rows = self._rows(f"SELECT {_FILE_COLUMNS} FROM files WHERE dataset_id=? AND state=? AND id>? ORDER BY id "
                              "LIMIT ?", (dataset_id, state.value, last, page))
            if not rows:
                return
            yield from (_file(r) for r in rows)
            last = rows[-1]["id"]

    def iter_manifest_rows(self, dataset_id: int, state: State, page: int = 5000
                           ) -> Iterator[tuple[str, int, int, str, str, str]]:
        """(relpath, size, mtime_ns, checksum, algorithm, verification) of the files in ``state``, a
        page at a time: only the columns a manifest needs, as plain tuples (building a QueuedFile
        per row took half of a 20,000-file manifest's time)."""
        last = 0
        while True:
            rows = self._rows("SELECT id, relpath, COALESCE(size,0), COALESCE(mtime_ns,0), COALESCE(checksum,''), "
                              "COALESCE(algorithm,''), COALESCE(verification,'size') FROM files WHERE "
                              "dataset_id=? AND state=? AND id>? ORDER BY id LIMIT ?",
                              (dataset_id, state.value, last, page))
            if not rows:
                return
            yield from (tuple(r)[1:] for r in rows)
            last = rows[-1][0]

    def counts(self, dataset_id: int) -> dict[str, int]:
        """Files per state, from the counters the triggers keep (a few rows, whatever the file count)."""
        rows = self._rows("SELECT state, files FROM file_counts WHERE dataset_id=?", (dataset_id,))
        out = {s.value: 0 for s in State}
        out.update({r["state"]: r["files"] for r in rows})
        return out

    def byte_counts(self, dataset_id: int) -> dict[str, int]:
        """Bytes per state (sizes as the queue knows them), from the same counters."""
        rows = self._rows("SELECT state, bytes FROM file_counts WHERE dataset_id=? AND files>0", (dataset_id,))
        return {r["state"]: r["bytes"] for r in rows}

    def recount(self, dataset_id: int) -> tuple[dict[str, int], dict[str, int]]:
        """Files and bytes per state counted over every row: what the counters must equal (tests)."""
        rows = self._rows("SELECT state, COUNT(*) AS n, COALESCE(SUM(size),0) AS b FROM files "
                          "WHERE dataset_id=? GROUP BY state", (dataset_id,))
        files = {s.value: 0 for s in State}
        files.update({r["state"]: r["n"] for r in rows})
        return files, {r["state"]: r["b"] for r in rows}

    def iter_checksums(self, dataset_id: int, state: State) -> Iterator[tuple[str, str]]:
        """The distinct (algorithm, checksum) pairs of files in ``state``, streamed from the database
        (the manifest lists each once; a set of a million in memory is what it must not hold)."""
        for row in self._stream("SELECT DISTINCT algorithm, checksum FROM files WHERE dataset_id=? AND state=? "
                                "AND checksum IS NOT NULL", (dataset_id, state.value)):
            yield row[0] or "", row[1]

    def _stream(self, sql: str, args: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of one query, read a page at a time through a connection of its own: a WAL reader
        sees one snapshot and blocks no writer, so the queue's lock is not held while it runs."""
        reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            cur = reader.execute(sql, args)
            while rows := cur.fetchmany(2000):
                yield from rows
        finally:
            reader.close()

    def recent_errors(self, limit: int = 10, dataset_id: int | None = None) -> list[QueuedFile]:
        where, args = ("AND dataset_id=?", (dataset_id,)) if dataset_id is not None else ("", ())
        rows = self._rows(f"SELECT {_FILE_COLUMNS} FROM files INDEXED BY files_errors "
                          f"WHERE last_error IS NOT NULL {where} ORDER BY updated DESC LIMIT ?", (*args, limit))
        return [_file(r) for r in rows]

    # -- transitions ----------------------------------------------------------------------------
    def mark_uploaded(self, rows: Sequence[tuple[int, int, int, str, str]], others: Sequence[int]) -> None:
        """Files whose copy ended, in one commit: ``rows`` (id, size, mtime_ns, checksum, algorithm)
        with what their checksum step found (an empty checksum is stored as NULL: the storage's hash
        is recorded at verification), ``others`` as they were. Each row is written once, not once for
        the checksum and again for the state."""
        now = time.time()
        with self._tx() as db:
            db.executemany("UPDATE files SET size=?, mtime_ns=?, checksum=?, algorithm=?, state='uploaded', updated=? "
                           "WHERE id=? AND state='uploading'",
                           [(size, mtime, value or None, alg, now, fid) for fid, size, mtime, value, alg in rows])
            db.execute("UPDATE files SET state='uploaded', updated=? WHERE id IN (SELECT value FROM json_each(?)) "
                       "AND state='uploading'", (now, json.dumps(list(others))))

    def mark_verified(self, rows: Sequence[tuple[int, str, str]]) -> list[int]:
        """(id, verification level, checksum) of uploaded files that storage confirmed, in one commit.
        Returns the ids that were no longer 'uploaded' (a rescan requeued them meanwhile)."""
        now = time.time()
        with self._tx() as db:
            cur = db.executemany("UPDATE files SET state='verified', verification=?, checksum=?, last_error=NULL, "
                                 "maybe_stored=0, updated=? WHERE id=? AND state='uploaded'",
                                 [(level, checksum, now, fid) for fid, level, checksum in rows])
            if cur.rowcount == len(rows):  # all moved (nearly always): no second look
                return []
            ids = json.dumps([fid for fid, _, _ in rows])
            left = db.execute("SELECT id FROM files WHERE id IN (SELECT value FROM json_each(?)) "
                              "AND NOT (state='verified' AND updated=?)", (ids, now)).fetchall()
        return [row[0] for row in left]

    def mark(self, file_ids: Sequence[int], state: State, *, expect: State,
             verification: str | None = None) -> int:
        """Move files from ``expect`` to ``state`` in one transaction; returns how many moved.

        The ``expect`` guard makes a stale worker harmless: a file that a rescan sent back to
        pending while its old version was uploading is not marked verified by that upload.
        """
        now = time.time()
        ids = json.dumps(list(file_ids))  # one statement for the lot: a third of executemany's cost per row
        with self._tx() as db:
            if verification is None:
                cur = db.execute("UPDATE files SET state=?, updated=? WHERE id IN (SELECT value FROM json_each(?)) "
                                 "AND state=?", (state.value, now, ids, expect.value))
            else:
                cur = db.execute("UPDATE files SET state=?, verification=?, last_error=NULL, updated=? "
                                 "WHERE id IN (SELECT value FROM json_each(?)) AND state=?",
                                 (state.value, verification, now, ids, expect.value))
            return max(cur.rowcount, 0)

    def forget_stored(self, file_ids: Sequence[int]) -> None:
        """These files changed since their interrupted upload: what storage holds is an older
        version, so they are sent like any new file."""
        with self._tx() as db:
            db.executemany("UPDATE files SET maybe_stored=0 WHERE id=?", [(i,) for i in file_ids])

    def retry_later(self, file_id: int, error: str, delay: float, *, rehash: bool = False) -> None:
        """A transient failure: back to pending, due again after ``delay`` seconds."""
        now = time.time()
        extra = ", checksum=NULL, size=NULL, mtime_ns=NULL" if rehash else ""
        with self._tx() as db:
            db.execute(f"UPDATE files SET state='pending', attempts=attempts+1, last_error=?, next_retry=?, "
                       f"updated=?{extra} WHERE id=?", (error, now + delay, now, file_id))

    def requeue_stored(self, file_ids: Sequence[int], error: str, delay: float) -> None:
        """Uploaded files that storage could not confirm because it is down (or full): back to
        pending in one commit, all due at the same moment (one retry cycle for the lot, not one per
        file as their due times drift apart), and ``maybe_stored``: the batch that sends them again
        asks storage first, so what it already holds is not sent twice. Files a rescan requeued
        meanwhile (no longer ``uploaded``) keep their new state."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE files SET state='pending', maybe_stored=1, attempts=attempts+1, last_error=?, "
                       "next_retry=?, updated=? WHERE id IN (SELECT value FROM json_each(?)) AND state='uploaded'",
                       (error, now + delay, now, json.dumps(list(file_ids))))

    def fail(self, file_id: int, error: str) -> None:
        """A permanent failure: reported, not retried until the user asks."""
        with self._tx() as db:
            db.execute("UPDATE files SET state='failed', attempts=attempts+1, last_error=?, updated=? "
                       "WHERE id=?", (error, time.time(), file_id))

    def retry_now(self, dataset_id: int | None = None) -> int:
        """The user's Retry now: pending files waiting for their next retry slot are due at once."""
        where, args = ("AND dataset_id=?", (dataset_id,)) if dataset_id is not None else ("", ())
        with self._tx() as db:
            cur = db.execute(f"UPDATE files SET next_retry=0 WHERE state='pending' AND next_retry>0 {where}", args)
            return cur.rowcount

    def cancel(self, dataset_id: int) -> int:
        """The user's Cancel: files not yet sent (pending, failed) leave the queue, the dataset is
        ``cancelled`` (no longer served; ``scan_done`` off, so a step in flight cannot finalize it).
        What reached storage keeps its rows. Returns how many files were dropped."""
        with self._tx() as db:
            cur = db.execute("DELETE FROM files WHERE dataset_id=? AND state IN ('pending', 'failed')",
                             (dataset_id,))
            db.execute("UPDATE datasets SET state='cancelled', scan_done=0 WHERE id=?", (dataset_id,))
            return max(cur.rowcount, 0)

    def retry_failed(self, dataset_id: int) -> int:
        """The user's Retry: failed files become pending again."""
        with self._tx() as db:
            cur = db.execute("UPDATE files SET state='pending', attempts=0, next_retry=0, updated=? "
                             "WHERE dataset_id=? AND state='failed'", (time.time(), dataset_id))
            return cur.rowcount


def _dataset(row: sqlite3.Row) -> Dataset:
    return Dataset(id=row["id"], name=row["name"], spec=json.loads(row["spec"]), mode=Mode(row["mode"]),
                   storage_url=row["storage_url"], storage_path=row["storage_path"],
                   catalogue_kind=row["catalogue_kind"], catalogue_id=row["catalogue_id"],
                   state=DatasetState(row["state"]), scan_done=bool(row["scan_done"]),
                   manifest_done=bool(row["manifest_done"]), created=row["created"],
                   finished=row["finished"], catalogue_url=row["catalogue_url"], config=row["config"])


def _session(row: sqlite3.Row) -> Session:
    return Session(dataset_id=row["dataset_id"], sources=json.loads(row["sources"]),
                   filters=json.loads(row["filters"]), state=SessionState(row["state"]),
                   waiting=row["waiting"], watch=row["watch"], warning=row["warning"], pid=row["pid"])


_STATES = {s.value: s for s in State}  # a dict lookup: State(value) costs several times more per row


# the columns of a QueuedFile, in its order: rows are read by position (by name cost twice as much)
_FILE_COLUMNS = ", ".join(QueuedFile._fields)


def _file(row: sqlite3.Row) -> QueuedFile:
    return QueuedFile(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], _STATES[row[9]],
                      row[10], row[11], row[12], bool(row[13]))
