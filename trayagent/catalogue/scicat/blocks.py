"""Which file sits in which SciCat OrigDatablock: a small local index, and how blocks are cut.

SciCat has no per-file upsert: files live in the ``dataFileList`` arrays of OrigDatablocks, and a
PATCH replaces an array wholesale. To keep ``register_files`` idempotent without reading every block
of a 500,000-file dataset on each batch, we keep ``path -> (block id, chk, size)`` in SQLite.

The index is trusted only while a dataset is marked *synced*. It is marked unsynced before each block
is created and synced again in the same transaction that records the new block, so a crash or a lost
answer between the POST and that commit leaves the dataset unsynced: the next call rebuilds the index
from ``GET /datasets/{pid}/origdatablocks`` and a block that did land is never sent twice.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import sqlitedb
from ...formats import rfc3339
from ..base import FileRecord

MAX_FILES_PER_BLOCK = 20_000  # PSI's ingestor limit; keeps blocks readable in the web UI
MAX_BLOCK_BYTES = 8 << 20  # half the backend's default 16 MB body limit
_BLOCK_OVERHEAD = 512  # datasetId, size, chkAlg and JSON punctuation around the list

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    catalogue TEXT NOT NULL, pid TEXT NOT NULL, path TEXT NOT NULL,
    block TEXT NOT NULL, chk TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (catalogue, pid, path)
);
CREATE TABLE IF NOT EXISTS datasets (
    catalogue TEXT NOT NULL, pid TEXT NOT NULL, synced INTEGER NOT NULL,
    PRIMARY KEY (catalogue, pid)
);
"""


@dataclass(frozen=True)
class Entry:
    """What the index knows about a registered file."""

    block: str
    chk: str
    size: int


def epoch(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except (ValueError, AttributeError):
        return 0.0


def data_file(f: FileRecord) -> dict[str, Any]:
    """A ``DataFile`` of the backend: path relative to sourceFolder, size, RFC 3339 time, chk."""
    return {"path": f.path, "size": f.size, "time": rfc3339(f.mtime), "chk": f.checksum}


# The properties of the backend's DataFile DTO (v4.27.0, whitelist + forbidNonWhitelisted): anything
# else in a dataFileList entry, such as the _id and id mongoose adds to what GET returns, is a 400.
DATA_FILE_FIELDS = ("path", "size", "time", "chk", "uid", "gid", "perm")


def writable(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored ``dataFileList`` entry as a request may send it back: DataFile properties only."""
    return {k: entry[k] for k in DATA_FILE_FIELDS if entry.get(k) is not None}


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def cut_blocks(entries: Sequence[dict[str, Any]], max_files: int = MAX_FILES_PER_BLOCK,
               max_bytes: int = MAX_BLOCK_BYTES) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of ``dataFileList`` entries, each under both limits."""
    block: list[dict[str, Any]] = []
    used = _BLOCK_OVERHEAD
    for entry in entries:
        size = _json_size(entry) + 1
        if block and (len(block) >= max_files or used + size > max_bytes):
            yield block
            block, used = [], _BLOCK_OVERHEAD
        block.append(entry)
        used += size
    if block:
        yield block


class BlockIndex:
    """The SQLite index; one connection shared by threads behind a lock."""

    def __init__(self, path: Path, catalogue: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.catalogue = catalogue
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=10000")
        sqlitedb.use_wal(self._conn)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            sqlitedb.close(self._conn)

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _synced_row(self, pid: str, synced: int) -> tuple[str, Sequence[Any]]:
        sql = ("INSERT INTO datasets VALUES (?, ?, ?) ON CONFLICT (catalogue, pid) DO UPDATE "
               "SET synced = excluded.synced")
        return sql, (self.catalogue, pid, synced)

    def synced(self, pid: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT synced FROM datasets WHERE catalogue = ? AND pid = ?",
                                     (self.catalogue, pid)).fetchone()
        return bool(row and row[0])

    def mark_unsynced(self, pid: str) -> None:
        self._write([self._synced_row(pid, 0)])

    def replace_all(self, pid: str, entries: dict[str, Entry]) -> None:
        """The index of ``pid`` becomes exactly ``entries`` (a rebuild from the server)."""
        rows = [("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                 (self.catalogue, pid, path, e.block, e.chk, e.size)) for path, e in entries.items()]
        self._write([("DELETE FROM files WHERE catalogue = ? AND pid = ?", (self.catalogue, pid)),
                     *rows, self._synced_row(pid, 1)])

    def record(self, pid: str, block: str, files: Iterable[dict[str, Any]]) -> None:
        """``files`` now live in ``block``, as the server holds them; the index is synced again."""
        sql = ("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (catalogue, pid, path) DO UPDATE "
               "SET block = excluded.block, chk = excluded.chk, size = excluded.size")
        rows = [(sql, (self.catalogue, pid, f["path"], block, f.get("chk") or "", int(f["size"])))
                for f in files]
        self._write([*rows, self._synced_row(pid, 1)])

    def lookup(self, pid: str, paths: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        with self._lock:
            for start in range(0, len(paths), 500):
                chunk = paths[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for path, block, chk, size in self._conn.execute(
                        f"SELECT path, block, chk, size FROM files WHERE catalogue = ? AND pid = ? "
                        f"AND path IN ({marks})", (self.catalogue, pid, *chunk)):
                    found[path] = Entry(block, chk, size)
        return found

    def count(self, pid: str) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM files WHERE catalogue = ? AND pid = ?",
                                          (self.catalogue, pid)).fetchone()[0])


def index_from_blocks(blocks: Any) -> dict[str, Entry]:
    """``path -> Entry`` from the server's blocks (a path listed twice: the later block wins)."""
    entries: dict[str, Entry] = {}
    for block in blocks if isinstance(blocks, list) else []:
        bid = str(block.get("_id") or block.get("id") or "") if isinstance(block, dict) else ""
        for f in block.get("dataFileList") or [] if bid else []:
            if isinstance(f, dict) and isinstance(f.get("path"), str):
                entries[f["path"]] = Entry(bid, str(f.get("chk") or ""), int(f.get("size") or 0))
    return entries
