"""A catalogue in a local SQLite file, for sites without SciCat and for offline operation.

It keeps the same promises as any catalogue (see ``base``): ``ensure_dataset`` is idempotent on the
storage location, ``register_files`` is an upsert keyed by relative path. The dataset's ``size`` and
``number_of_files`` are kept up to date by triggers on the files table, so a re-registered or modified
file adjusts them in O(1) instead of re-summing 100,000 rows after every batch.

One connection is shared by every thread and guarded by a lock; WAL mode and ``busy_timeout`` let a
second process (``trayagent status``) read while the engine writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import sqlitedb
from ..errors import CatalogueError, LocalStateError
from ..formats import rfc3339
from ..metadata.model import HARVESTED_KEY
from .base import Catalogue, DatasetSpec, FileRecord, StorageLocation

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    proposal TEXT,
    description TEXT,
    investigation_description TEXT,
    owner TEXT,
    creation_location TEXT,
    source_folders TEXT NOT NULL DEFAULT '[]',
    keywords TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    storage_url TEXT NOT NULL,
    storage_host TEXT NOT NULL,
    storage_path TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    number_of_files INTEGER NOT NULL DEFAULT 0,
    UNIQUE (storage_url, storage_path)
);
CREATE INDEX IF NOT EXISTS datasets_name ON datasets (name);
CREATE TABLE IF NOT EXISTS files (
    dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    checksum TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    verification TEXT NOT NULL,
    registered TEXT NOT NULL,
    PRIMARY KEY (dataset_id, path)
);
CREATE TRIGGER IF NOT EXISTS files_insert AFTER INSERT ON files BEGIN
    UPDATE datasets SET size = size + NEW.size, number_of_files = number_of_files + 1
    WHERE id = NEW.dataset_id;
END;
CREATE TRIGGER IF NOT EXISTS files_update AFTER UPDATE OF size ON files BEGIN
    UPDATE datasets SET size = size - OLD.size + NEW.size WHERE id = NEW.dataset_id;
END;
CREATE TRIGGER IF NOT EXISTS files_delete AFTER DELETE ON files BEGIN
    UPDATE datasets SET size = size - OLD.size, number_of_files = number_of_files - 1
    WHERE id = OLD.dataset_id;
END;
"""

_UPSERT_FILE = """
INSERT INTO files (dataset_id, path, size, mtime, checksum, algorithm, verification, registered)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dataset_id, path) DO UPDATE SET
    size = excluded.size, mtime = excluded.mtime, checksum = excluded.checksum,
    algorithm = excluded.algorithm, verification = excluded.verification,
    registered = excluded.registered
"""

# Text fields that ensure_dataset fills in when the stored value is empty (they say who and where).
_FILLABLE_TEXT = ("proposal", "owner", "creation_location")
# Text fields the user's latest run replaces (see Catalogue.update_dataset).
_USER_TEXT = ("description", "investigation_description")
_JSON_COLUMNS = ("source_folders", "keywords", "metadata")


def _json_default(value: Any) -> str:
    """TOML dates and other non-JSON values in user metadata are stored as text, not rejected."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)


class LocalCatalogue(Catalogue):
    """The ``Catalogue`` contract on a SQLite file (``Paths.catalogue_db`` by default)."""

    kind = "local"

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.RLock()
        self._conn = self._open()

    # -- connection -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._unreadable(exc) from exc
        try:
            self._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        sqlitedb.use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            sqlitedb.close(self._conn)

    def __enter__(self) -> LocalCatalogue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- error translation ------------------------------------------------------------------------

    def _unreadable(self, exc: BaseException) -> CatalogueError:
        return CatalogueError(
            f"The local catalogue {self.db_path} cannot be opened: {exc}",
            "Check that the folder exists and that you may read and write it.",
        )

    def _corrupt(self, exc: BaseException) -> CatalogueError:
        return CatalogueError(
            f"The local catalogue {self.db_path} is damaged or is not a catalogue database: {exc}",
            f"Stop trayagent, move {self.db_path.name} (and any -wal/-shm files next to it) aside, e.g. to "
            f"{self.db_path.name}.broken, and start again: a fresh catalogue is created and the next "
            "upload registers the datasets again. Uploaded files in storage are not affected.",
        )

    def _translate(self, exc: sqlite3.Error) -> CatalogueError | LocalStateError:
        text = str(exc).lower()
        if "disk is full" in text:  # not damage: free space and run again (the commit was rolled back)
            full = sqlitedb.local_state_error(exc, self.db_path.parent)
            assert full is not None
            return full
        if "locked" in text or "busy" in text:
            return CatalogueError(
                f"The local catalogue {self.db_path} is busy (another process holds it): {exc}",
                "This usually clears by itself; trayagent retries.",
                transient=True,
            )
        if isinstance(exc, sqlite3.ProgrammingError):
            return CatalogueError(f"The local catalogue {self.db_path} was used after closing: {exc}")
        if "unable to open" in text or "readonly" in text or "disk i/o" in text:
            return self._unreadable(exc)
        return self._corrupt(exc)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) under the lock; sqlite errors translated."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    def _rollback(self) -> None:
        """Undo an open transaction; a failure here must not hide the error that caused it."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("Rollback in local catalogue %s failed: %s", self.db_path, exc)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    def _require(self, conn: sqlite3.Connection, dataset_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        if row is None:
            raise CatalogueError(
                f"Dataset {dataset_id!r} is not in the local catalogue {self.db_path}.",
                "It may have been registered in another catalogue or the catalogue file was replaced; "
                "run the upload again so the dataset is created here.",
            )
        return row

    # -- Catalogue contract -----------------------------------------------------------------------

    def ensure_dataset(self, spec: DatasetSpec, location: StorageLocation) -> str:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT * FROM datasets WHERE storage_url = ? AND storage_path = ?",
                (location.url, location.path),
            ).fetchone()
            if row is None:
                return self._insert_dataset(conn, spec, location)
            self._fill_in(conn, row, spec)
            return str(row["id"])

    def _insert_dataset(self, conn: sqlite3.Connection, spec: DatasetSpec, location: StorageLocation) -> str:
        dataset_id = f"local/{uuid.uuid4()}"
        conn.execute(
            "INSERT INTO datasets (id, name, proposal, description, investigation_description, owner,"
            " creation_location, source_folders, keywords, metadata, storage_url, storage_host,"
            " storage_path, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dataset_id, spec.name, spec.proposal, spec.description, spec.investigation_description,
                spec.owner, spec.creation_location, _dumps(list(spec.source_folders)),
                _dumps(list(spec.keywords)), _dumps(spec.metadata), location.url, location.host,
                location.path, rfc3339(),
            ),
        )
        log.info("Created dataset %s (%s) in local catalogue for %s", dataset_id, spec.name, location.path)
        return dataset_id

    def update_dataset(self, dataset_id: str, spec: DatasetSpec) -> None:
        with self._transaction() as conn:
            self._fill_in(conn, self._require(conn, dataset_id), spec)

    def _fill_in(self, conn: sqlite3.Connection, row: sqlite3.Row, spec: DatasetSpec) -> None:
        """Bring an existing dataset up to ``spec``: the user's description, keywords and entries
        replace the stored ones (the harvested summary stays); proposal, owner, location and source
        folders only fill empty fields; what ``spec`` leaves empty is kept."""
        updates: dict[str, Any] = {}
        for column in _FILLABLE_TEXT:
            new, old = getattr(spec, column), row[column]
            if new and not old:
                updates[column] = new
            elif new and old != new:
                log.info("Dataset %s keeps its %s %r; the new value %r is ignored", row["id"], column, old, new)
        for column in _USER_TEXT:
            if getattr(spec, column):
                updates[column] = getattr(spec, column)
        if spec.source_folders and row["source_folders"] in (None, "", "[]"):
            updates["source_folders"] = _dumps(list(spec.source_folders))
        if spec.keywords:
            updates["keywords"] = _dumps(list(spec.keywords))
        if spec.metadata:
            harvested = json.loads(row["metadata"] or "{}").get(HARVESTED_KEY)
            meta = {**spec.metadata, **({HARVESTED_KEY: harvested} if harvested is not None else {})}
            updates["metadata"] = _dumps(meta)
        if spec.name != row["name"]:
            log.info("Dataset %s keeps its name %r; the new name %r is ignored",
                     row["id"], row["name"], spec.name)
        updates = {column: new for column, new in updates.items() if row[column] != new}
        if updates:
            log.info("Dataset %s takes the new %s", row["id"], ", ".join(updates))
            assignments = ", ".join(f"{column} = ?" for column in updates)
            conn.execute(f"UPDATE datasets SET {assignments} WHERE id = ?", (*updates.values(), row["id"]))

    def register_files(self, dataset_id: str, files: Sequence[FileRecord]) -> None:
        registered = rfc3339()
        rows = [
            (dataset_id, f.path, f.size, f.mtime, f.checksum, f.algorithm, f.verification, registered)
            for f in files
        ]
        with self._transaction() as conn:
            self._require(conn, dataset_id)
            conn.executemany(_UPSERT_FILE, rows)

    def finish_dataset(self, dataset_id: str) -> None:
        """Mark the dataset complete; a later call (after more files) moves ``finished`` to now."""
        with self._transaction() as conn:
            self._require(conn, dataset_id)
            conn.execute("UPDATE datasets SET finished = ? WHERE id = ?", (rfc3339(), dataset_id))

    def dataset_info(self, dataset_id: str) -> dict[str, Any]:
        with self._reading() as conn:
            return _decode(self._require(conn, dataset_id))

    def harvested(self, dataset_id: str) -> dict[str, Any]:
        found = self.dataset_info(dataset_id)["metadata"].get(HARVESTED_KEY)
        return found if isinstance(found, dict) else {}

    def set_harvested(self, dataset_id: str, summary: dict[str, Any]) -> None:
        """``metadata.harvested``: beside the user's entries, which win (the same scheme as SciCat's)."""
        with self._transaction() as conn:
            meta = json.loads(self._require(conn, dataset_id)["metadata"])
            meta[HARVESTED_KEY] = summary
            conn.execute("UPDATE datasets SET metadata = ? WHERE id = ?", (_dumps(meta), dataset_id))

    def list_files(self, dataset_id: str) -> list[FileRecord]:
        with self._reading() as conn:
            self._require(conn, dataset_id)
            cursor = conn.execute(
                "SELECT path, size, mtime, checksum, algorithm, verification FROM files"
                " WHERE dataset_id = ? ORDER BY path",
                (dataset_id,),
            )
            return [FileRecord(*row) for row in cursor]

    def find_datasets(self, name: str | None = None) -> list[dict[str, Any]]:
        """Datasets (all, or those whose name equals ``name``), oldest first, as ``dataset_info`` dicts."""
        with self._reading() as conn:
            if name is None:
                cursor = conn.execute("SELECT * FROM datasets ORDER BY created, rowid")
            else:
                cursor = conn.execute(
                    "SELECT * FROM datasets WHERE name = ? ORDER BY created, rowid", (name,)
                )
            return [_decode(row) for row in cursor]


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    info = dict(row)
    for column in _JSON_COLUMNS:
        info[column] = json.loads(info[column])
    return info
