"""Unit tests for trayagent.queue: the durable SQLite state machine of datasets and files."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trayagent.queue import NewFile, Queue, QueueError, State

URL = "webdav:https://store.example/dav"


@pytest.fixture
def q(tmp_path: Path) -> Iterator[Queue]:
    queue = Queue(tmp_path / "db" / "queue.sqlite")
    yield queue
    queue.close()


def _ds(q: Queue, path: str = "p1/d1", **kw: object) -> int:
    args: dict[str, object] = {"name": "d1", "spec": {"name": "d1"}, "mode": "batch", "storage_url": URL,
                               "storage_path": path, "catalogue_kind": "local"}
    args.update(kw)
    return q.ensure_dataset(**args).id  # type: ignore[arg-type]


def _nf(rel: str, size: int = 10, mtime: int = 1000) -> NewFile:
    return NewFile("/src", rel, rel, size, mtime)


def _state(q: Queue, ds: int, rel: str) -> str:
    return next(f.state for f in q.files(ds) if f.relpath == rel)


# -- datasets ------------------------------------------------------------------------------------


def test_ensure_dataset_is_idempotent_and_reactivates(q: Queue) -> None:
    first = q.ensure_dataset(name="d1", spec={"a": 1}, mode="batch", storage_url=URL, storage_path="p/d",
                             catalogue_kind="local")
    assert (first.state, first.scan_done, first.spec, first.catalogue_id) == ("active", False, {"a": 1}, None)
    q.set_dataset(first.id, state="complete", scan_done=1, manifest_done=1, finished=5.0, catalogue_id="C1")
    again = q.ensure_dataset(name="other", spec={"a": 2}, mode="sync", storage_url=URL, storage_path="p/d",
                             catalogue_kind="local")
    assert again.id == first.id and len(q.datasets()) == 1
    assert (again.state, again.scan_done, again.manifest_done, again.finished) == ("active", False, False, None)
    assert (again.mode, again.spec, again.catalogue_id, again.name) == ("sync", {"a": 2}, "C1", "d1")


def test_datasets_are_keyed_by_url_and_path(q: Queue) -> None:
    a = _ds(q, "p/d")
    b = _ds(q, "p/e")
    c = _ds(q, "p/d", storage_url="s3:bucket")
    assert len({a, b, c}) == 3
    assert q.find_dataset(URL, "p/e").id == b  # type: ignore[union-attr]
    assert q.find_dataset(URL, "nope") is None


def test_datasets_filter_and_lookup(q: Queue) -> None:
    a, b = _ds(q, "p/a"), _ds(q, "p/b")
    q.set_dataset(a, state="complete")
    assert [d.id for d in q.datasets("complete")] == [a]
    assert [d.id for d in q.datasets("active")] == [b]
    assert q.dataset(b).storage_path == "p/b"
    with pytest.raises(QueueError, match="no dataset with id 999"):
        q.dataset(999)


def test_set_dataset_rejects_unknown_fields(q: Queue) -> None:
    ds = _ds(q)
    with pytest.raises(ValueError, match="name"):
        q.set_dataset(ds, name="x")
    with pytest.raises(ValueError):
        q.set_dataset(ds)


# -- enqueue -------------------------------------------------------------------------------------


def test_enqueue_counts_new_rows_and_ignores_unchanged(q: Queue) -> None:
    ds = _ds(q)
    assert q.enqueue(ds, [_nf("a"), _nf("b"), _nf("c/d")]) == 3
    assert q.enqueue(ds, [_nf("a"), _nf("b")]) == 0
    assert q.enqueue(ds, iter([_nf("a"), _nf("e")])) == 1
    assert [f.relpath for f in q.files(ds)] == ["a", "b", "c/d", "e"]
    assert all(f.state == "pending" for f in q.files(ds))


def test_unchanged_file_keeps_its_state(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a")])
    fid = q.files(ds)[0].id
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.mark_uploaded([(fid, 10, 1000, "abc", "md5")], [])
    for old, new in [(State.UPLOADED, State.VERIFIED), (State.VERIFIED, State.REGISTERED)]:
        assert q.mark([fid], new, expect=old) == 1
    assert q.enqueue(ds, [_nf("a")]) == 0
    f = q.files(ds)[0]
    assert (f.state, f.checksum) == ("registered", "abc")


@pytest.mark.parametrize("changed", [_nf("a", size=11), _nf("a", mtime=2000)])
def test_changed_file_goes_back_to_pending_and_is_reset(q: Queue, changed: NewFile) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a")])
    fid = q.files(ds)[0].id
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.mark_uploaded([(fid, 10, 1000, "abc", "md5")], [])
    q.retry_later(fid, "boom", 0)
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.mark([fid], State.UPLOADED, expect=State.UPLOADING, verification="hash")
    assert q.enqueue(ds, [changed]) == 1
    f = q.files(ds)[0]
    assert (f.state, f.checksum, f.attempts, f.last_error, f.verification) == ("pending", None, 0, None, None)
    assert (f.size, f.mtime_ns) == (changed.size, changed.mtime_ns)
    assert f.id == fid


def test_failed_file_goes_back_to_pending_on_reenqueue(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b")])
    fa = q.files(ds)[0].id
    q.fail(fa, "403 Forbidden")
    assert _state(q, ds, "a") == "failed"
    assert q.enqueue(ds, [_nf("a"), _nf("b")]) == 1
    f = q.files(ds)[0]
    assert (f.state, f.last_error, f.attempts) == ("pending", None, 0)


def test_enqueue_updates_source_location_of_changed_file(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [NewFile("/old", "x", "a", 1, 1)])
    q.enqueue(ds, [NewFile("/new", "y", "a", 2, 1)])
    f = q.files(ds)[0]
    assert (f.src_root, f.src_rel, f.local_path) == ("/new", "y", Path("/new/y"))


def test_same_relpath_in_two_datasets_is_two_rows(q: Queue) -> None:
    a, b = _ds(q, "p/a"), _ds(q, "p/b")
    assert q.enqueue(a, [_nf("x")]) == 1
    assert q.enqueue(b, [_nf("x")]) == 1
    assert len(q.files(a)) == len(q.files(b)) == 1


# -- transitions ---------------------------------------------------------------------------------


def test_mark_with_expect_guard_leaves_other_states_alone(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b"), _nf("c")])
    ids = [f.id for f in q.files(ds)]
    assert q.mark(ids[:2], State.UPLOADING, expect=State.PENDING) == 2
    assert q.mark(ids, State.UPLOADED, expect=State.UPLOADING, verification="size") == 2
    assert [f.state for f in q.files(ds)] == ["uploaded", "uploaded", "pending"]
    assert q.files(ds)[0].verification == "size"
    assert q.mark(ids, State.VERIFIED, expect=State.UPLOADING) == 0
    assert [f.state for f in q.files(ds)] == ["uploaded", "uploaded", "pending"]


def test_stale_upload_does_not_mark_requeued_file(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a")])
    fid = q.files(ds)[0].id
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.enqueue(ds, [_nf("a", size=99)])  # rescan: the file changed while uploading
    assert q.mark([fid], State.UPLOADED, expect=State.UPLOADING) == 0
    assert _state(q, ds, "a") == "pending"


def test_mark_with_verification_clears_last_error(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a")])
    fid = q.files(ds)[0].id
    q.retry_later(fid, "timeout", 0)
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.mark([fid], State.UPLOADED, expect=State.UPLOADING, verification="hash")
    f = q.files(ds)[0]
    assert (f.last_error, f.verification, f.attempts) == (None, "hash", 1)


def test_retry_later_sets_next_retry_and_due_honours_it(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b")])
    fa, fb = (f.id for f in q.files(ds))
    q.mark([fa], State.UPLOADING, expect=State.PENDING)
    t0 = time.time()
    q.retry_later(fa, "connection refused", 60)
    f = q.files(ds)[0]
    assert (f.state, f.attempts, f.last_error) == ("pending", 1, "connection refused")
    assert [x.id for x in q.due(ds, State.PENDING, 10)] == [fb]
    assert [x.id for x in q.due(ds, State.PENDING, 10, now=t0 + 61)] == [fa, fb]
    assert q.due(ds, State.PENDING, 1, now=t0 + 61)[0].id == fa
    assert q.due(ds, State.UPLOADING, 10, now=t0 + 61) == []
    nrt = q.next_retry_time(ds)
    assert nrt == 0  # b is due now
    q.mark([fb], State.UPLOADING, expect=State.PENDING)
    nrt = q.next_retry_time(ds)
    assert nrt is not None and t0 + 59 < nrt < time.time() + 61


def test_next_retry_time_none_without_pending(q: Queue) -> None:
    ds = _ds(q)
    assert q.next_retry_time(ds) is None


def test_retry_later_with_rehash_forgets_checksum(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a")])
    fid = q.files(ds)[0].id
    q.mark([fid], State.UPLOADING, expect=State.PENDING)
    q.mark_uploaded([(fid, 10, 1000, "abc", "sha256")], [])
    q.retry_later(fid, "changed", 0, rehash=True)
    f = q.files(ds)[0]
    assert (f.checksum, f.size, f.mtime_ns, f.algorithm) == (None, None, None, "sha256")


def test_fail_and_retry_failed(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b")])
    fa = q.files(ds)[0].id
    q.fail(fa, "403 Forbidden")
    f = q.files(ds)[0]
    assert (f.state, f.attempts, f.last_error) == ("failed", 1, "403 Forbidden")
    assert [e.id for e in q.recent_errors(dataset_id=ds)] == [fa]
    assert q.retry_failed(ds) == 1
    f = q.files(ds)[0]
    assert (f.state, f.attempts) == ("pending", 0)
    assert q.retry_failed(ds) == 0


def test_recent_errors_newest_first_and_limited(q: Queue) -> None:
    a, b = _ds(q, "p/a"), _ds(q, "p/b")
    q.enqueue(a, [_nf("x"), _nf("y")])
    q.enqueue(b, [_nf("z")])
    ids = [f.id for f in q.files(a)] + [f.id for f in q.files(b)]
    for i, fid in enumerate(ids):
        q.fail(fid, f"e{i}")
        time.sleep(0.002)
    assert [e.last_error for e in q.recent_errors()] == ["e2", "e1", "e0"]
    assert [e.last_error for e in q.recent_errors(limit=1)] == ["e2"]
    assert [e.last_error for e in q.recent_errors(dataset_id=a)] == ["e1", "e0"]


def test_recover_interrupted_moves_uploading_back_to_pending(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b"), _nf("c")])
    ids = [f.id for f in q.files(ds)]
    q.mark(ids[:2], State.UPLOADING, expect=State.PENDING)
    q.mark(ids[1:2], State.UPLOADED, expect=State.UPLOADING)
    assert q.recover_interrupted(ds) == 1
    assert [f.state for f in q.files(ds)] == ["pending", "uploaded", "pending"]
    assert q.recover_interrupted(ds) == 0


# -- reading -------------------------------------------------------------------------------------


def test_counts_and_byte_counts(q: Queue) -> None:
    ds = _ds(q)
    other = _ds(q, "p/other")
    q.enqueue(ds, [_nf("a", 10), _nf("b", 20), _nf("c", 5)])
    q.enqueue(other, [_nf("z", 1000)])
    fa = q.files(ds)[0].id
    q.fail(fa, "x")
    counts = q.counts(ds)
    assert counts == {"pending": 2, "uploading": 0, "uploaded": 0, "verified": 0, "registered": 0, "failed": 1}
    assert q.byte_counts(ds) == {"pending": 25, "failed": 10}
    assert q.counts(_ds(q, "p/empty")) == {s.value: 0 for s in State}


def test_files_by_state(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b")])
    q.fail(q.files(ds)[1].id, "x")
    assert [f.relpath for f in q.files(ds, State.FAILED)] == ["b"]
    assert [f.relpath for f in q.files(ds, State.PENDING)] == ["a"]


def test_iter_files_pages_through_everything(q: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf(f"f{i:03d}") for i in range(23)])
    q.fail(q.files(ds)[5].id, "x")
    calls = 0
    real = q._rows

    def counting(sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        nonlocal calls
        calls += 1
        return real(sql, args)

    monkeypatch.setattr(q, "_rows", counting)
    got = [f.relpath for f in q.iter_files(ds, State.PENDING, page=5)]
    assert got == [f"f{i:03d}" for i in range(23) if i != 5]
    assert calls == 6  # 5 pages of at most 5, then an empty one
    assert list(q.iter_files(ds, State.VERIFIED, page=5)) == []


# -- the database file ---------------------------------------------------------------------------


def test_corrupt_database_raises_helpful_queue_error(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite"
    db.write_bytes(b"this is not an sqlite database at all\n" * 200)
    with pytest.raises(QueueError) as info:
        Queue(db)
    assert str(db) in info.value.message and "cannot be used" in info.value.message
    assert "Move the file aside" in info.value.hint
    assert info.value.exit_code == 2


def test_second_instance_sees_committed_state(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    one, two = Queue(path), Queue(path)
    try:
        ds = _ds(one)
        one.enqueue(ds, [_nf("a"), _nf("b")])
        one.mark([one.files(ds)[0].id], State.UPLOADING, expect=State.PENDING)
        assert two.find_dataset(URL, "p1/d1").id == ds  # type: ignore[union-attr]
        assert [f.state for f in two.files(ds)] == ["uploading", "pending"]
        assert two.recover_interrupted(ds) == 1
        assert one.counts(ds)["pending"] == 2
    finally:
        one.close()
        two.close()


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    q1 = Queue(path)
    ds = _ds(q1)
    q1.enqueue(ds, [_nf("a")])
    q1.close()
    q2 = Queue(path)
    try:
        assert [f.relpath for f in q2.files(ds)] == ["a"]
    finally:
        q2.close()


def test_enqueue_count_ignores_concurrent_changes(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf(f"old{i}") for i in range(5)])
    ids = [f.id for f in q.files(ds)]
    result: list[int] = []
    with q._lock:  # another thread is in the middle of a transaction
        worker = threading.Thread(target=lambda: result.append(q.enqueue(ds, [_nf("new")])))
        worker.start()
        time.sleep(0.2)
        q.mark(ids, State.UPLOADING, expect=State.PENDING)
    worker.join(5)
    assert result == [1]


def test_mark_verified_records_level_and_checksum_and_reports_stale(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b")])
    a, b = (f.id for f in q.files(ds))
    q.mark([a, b], State.UPLOADING, expect=State.PENDING)
    q.mark([a, b], State.UPLOADED, expect=State.UPLOADING)
    q.retry_later(b, "a rescan found a new version", 0)  # b is pending again: its old upload is stale
    assert q.mark_verified([(a, "hash", "cafe"), (b, "hash", "beef")]) == [b]
    fa, fb = q.files(ds)
    assert (fa.state, fa.verification, fa.checksum) == ("verified", "hash", "cafe")
    assert (fb.state, fb.checksum) == ("pending", None)


def test_mark_uploaded_writes_hashes_and_state_once_and_leaves_requeued_files(q: Queue) -> None:
    ds = _ds(q)
    q.enqueue(ds, [_nf("a"), _nf("b"), _nf("c")])
    a, b, c = (f.id for f in q.files(ds))
    q.mark([a, b, c], State.UPLOADING, expect=State.PENDING)
    q.enqueue(ds, [_nf("c", size=99)])  # a rescan found a new version of c while its old one was copied
    q.mark_uploaded([(a, 11, 1100, "aa", "blake3"), (c, 10, 1000, "", "md5")], [b])
    got = {f.relpath: (f.state, f.size, f.mtime_ns, f.checksum, f.algorithm) for f in q.files(ds)}
    assert got == {"a": ("uploaded", 11, 1100, "aa", "blake3"), "b": ("uploaded", 10, 1000, None, None),
                   "c": ("pending", 99, 1000, None, None)}  # an empty checksum is stored as NULL
    assert q.counts(ds)["uploaded"] == 2 and q.counts(ds)["pending"] == 1


def test_requeue_stored_makes_one_retry_cycle_and_asks_storage_first(q: Queue) -> None:
    """Storage down during verification: the unconfirmed files wait together (one due time, so one
    retry cycle for the lot) and are marked maybe_stored (the next send asks storage what it holds,
    rather than copying them again); a file a rescan requeued meanwhile keeps its new state."""
    ds = _ds(q)
    q.enqueue(ds, [_nf(name) for name in ("a", "b", "c", "d")])
    ids = {f.relpath: f.id for f in q.files(ds)}
    q.mark(list(ids.values()), State.UPLOADING, expect=State.PENDING)
    q.mark_uploaded([], list(ids.values()))
    q.enqueue(ds, [_nf("d", size=99)])  # a new version of d found while the old one waited for verification
    before = time.time()
    q.requeue_stored([ids["a"], ids["b"], ids["c"], ids["d"]], "connection refused", 30.0)
    got = {f.relpath: f for f in q.files(ds)}
    assert all(got[n].state == State.PENDING and got[n].maybe_stored for n in "abc")
    assert all(got[n].attempts == 1 and got[n].last_error == "connection refused" for n in "abc")
    assert not got["d"].maybe_stored and got["d"].attempts == 0 and got["d"].size == 99
    assert q.due(ds, State.PENDING, 10) == [got["d"]]  # a, b and c are not due yet
    times = {r["next_retry"] for r in q._rows("SELECT next_retry FROM files WHERE relpath IN ('a', 'b', 'c')")}
    assert len(times) == 1  # one moment for the lot
    due_at = times.pop()
    assert before + 30.0 <= due_at <= time.time() + 30.0
    assert [f.relpath for f in q.due(ds, State.PENDING, 10, now=due_at)] == ["a", "b", "c", "d"]
