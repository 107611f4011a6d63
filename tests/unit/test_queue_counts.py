"""The queue's per-dataset counters (files and bytes per state, kept by triggers in the transaction
that changes a file) against a full recount, after random state changes of every kind the pipeline
makes; and an older queue without counters gets them filled once."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from trayagent.queue import Mode, NewFile, Queue, State

URL = "webdav:https://store.example/dav"


@pytest.fixture
def q(tmp_path: Path) -> Iterator[Queue]:
    queue = Queue(tmp_path / "queue.sqlite")
    yield queue
    queue.close()


def _ds(q: Queue, path: str) -> int:
    return q.ensure_dataset(name=path, spec={"name": path}, mode=Mode.BATCH, storage_url=URL, storage_path=path,
                            catalogue_kind="local").id


def _files(n: int, rng: random.Random, tag: str = "") -> list[NewFile]:
    return [NewFile("/src", f"f{i}", f"f{i}", rng.randrange(0, 10_000), rng.randrange(1, 5) + len(tag))
            for i in range(n)]


def _step(q: Queue, ds: int, rng: random.Random) -> None:
    """One random change of the kinds the engine, sync sessions and the user make."""
    rows = q.files(ds)
    ids = [f.id for f in rows]
    some = rng.sample(ids, min(len(ids), rng.randrange(1, 40)))
    kind = rng.randrange(10)
    if kind == 0:
        q.enqueue(ds, _files(rng.randrange(1, 400), rng, tag=str(rng.random())))  # new and changed files
    elif kind == 1:
        q.mark(some, rng.choice(list(State)), expect=rng.choice(list(State)))
    elif kind == 2:
        half = len(some) // 2  # sizes change with the checksum step; the others only change state
        q.mark_uploaded([(i, rng.randrange(0, 10_000), 7, "ab", "md5") for i in some[:half]], some[half:])
    elif kind == 3:
        q.mark_verified([(i, "hash", "cd") for i in some])
    elif kind == 4:
        for i in some[:5]:
            q.retry_later(i, "busy", 0.0, rehash=rng.random() < 0.5)  # size becomes NULL
    elif kind == 5:
        for i in some[:5]:
            q.fail(i, "refused")
    elif kind == 6:
        q.retry_failed(ds)
    elif kind == 7:
        q.recover_interrupted(ds)
    elif kind == 8:
        q.mark(some, State.UPLOADING, expect=State.PENDING)
    else:  # the pipeline's forward moves, from a state files are in
        state = rng.choice(rows).state
        q.mark([f.id for f in rows if f.state == state][:50], rng.choice(list(State)), expect=state)


def test_counters_equal_a_full_recount_after_random_changes(q: Queue) -> None:
    rng = random.Random(20261202)
    datasets = [_ds(q, "p/a"), _ds(q, "p/b")]
    for ds in datasets:
        q.enqueue(ds, _files(300, rng))
    seen: set[str] = set()
    for round_ in range(300):
        ds = rng.choice(datasets)
        _step(q, ds, rng)
        files, sizes = q.recount(ds)
        assert q.counts(ds) == files, f"round {round_}"
        assert q.byte_counts(ds) == sizes, f"round {round_}"
        seen |= {s for s, n in files.items() if n}
    assert sum(sum(q.counts(ds).values()) for ds in datasets) > 600  # the random walk did enqueue
    assert seen == {s.value for s in State}  # and took files through every state


def test_a_queue_from_before_the_counters_gets_them_filled_once(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    q = Queue(path)
    ds = _ds(q, "p/old")
    q.enqueue(ds, [NewFile("/src", f"f{i}", f"f{i}", 10 * i, 1) for i in range(50)])
    q.mark(list(range(1, 11)), State.FAILED, expect=State.PENDING)
    q.close()
    with sqlite3.connect(path) as db:  # as an older trayagent left it: no counters, user_version 0
        db.executescript("DROP TABLE file_counts; DROP TRIGGER file_counts_insert; "
                         "DROP TRIGGER file_counts_update; DROP TRIGGER file_counts_delete; PRAGMA user_version=0;")
    db.close()
    again = Queue(path)
    try:
        assert again.counts(ds) == again.recount(ds)[0]
        assert again.counts(ds)["pending"] == 40 and again.counts(ds)["failed"] == 10
        assert again.byte_counts(ds) == again.recount(ds)[1]
    finally:
        again.close()
    reopened = Queue(path)  # opening again must not count the rows a second time
    try:
        assert reopened.counts(ds) == reopened.recount(ds)[0]
    finally:
        reopened.close()
