"""How trayagent's SQLite files (queue, local catalogue, SciCat block index) are closed.

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

import sqlite3

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
