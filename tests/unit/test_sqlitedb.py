"""sqlitedb: a process that ends with os._exit leaves its WAL for the next opener, which reads it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

_WRITER = """
import os, sqlite3, sys
from trayagent import sqlitedb
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("CREATE TABLE t (x)")
conn.execute("INSERT INTO t VALUES (42)")
if sys.argv[2] == "skip":
    sqlitedb.end_without_checkpoint()
sqlitedb.close(conn)
os._exit(0)
"""


@pytest.mark.parametrize("mode", ["skip", "checkpoint"])
def test_commits_survive_either_way_and_only_the_skip_leaves_the_wal(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite"
    subprocess.run([sys.executable, "-c", _WRITER, str(db), mode], check=True, timeout=60)
    wal = tmp_path / "q.sqlite-wal"
    if mode == "skip":
        assert wal.exists() and wal.stat().st_size > 0  # the commits are in the WAL, not yet in the file
    else:
        assert not wal.exists()  # checkpointed into the file and removed at close
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
    finally:
        conn.close()
