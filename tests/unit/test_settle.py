"""Completion detection rules (Settler), with a fake clock and real files."""

from __future__ import annotations

from pathlib import Path

from trayagent.sync.settle import Settler


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settler(clock: Clock, in_use: bool = False) -> Settler:
    return Settler(2.0, clock=clock, in_use=lambda p: in_use, open_timeout=60)


def test_close_event_makes_a_file_ready_at_once(tmp_path: Path) -> None:
    clock, f = Clock(), tmp_path / "a.raw"
    s = _settler(clock)
    f.write_bytes(b"x" * 10)
    s.touch(f, wait_for_close=True)
    assert s.take_ready() == []
    s.closed(f)
    assert [p for p, _ in s.take_ready()] == [f] and s.waiting == 0


def test_live_write_waits_for_the_close_not_the_quiet_period(tmp_path: Path) -> None:
    clock, f = Clock(), tmp_path / "a.raw"
    s = _settler(clock)
    f.write_bytes(b"frame1")
    s.touch(f, wait_for_close=True)
    clock.now += 10  # longer than quiet_seconds, shorter than the open timeout
    assert s.take_ready() == []
    clock.now += 60
    assert [p for p, _ in s.take_ready()] == [f]  # a writer silent this long: taken anyway


def test_scan_found_file_is_judged_by_quiet_period(tmp_path: Path) -> None:
    clock, f = Clock(), tmp_path / "a.raw"
    s = _settler(clock)
    f.write_bytes(b"data")
    s.touch(f, wait_for_close=True)
    s.found(f)  # a rescan after lost events: no close may ever come
    clock.now += 1.9
    assert s.take_ready() == []
    clock.now += 0.2
    assert [p for p, _ in s.take_ready()] == [f]


def test_change_restarts_the_quiet_period_and_cancels_an_old_close(tmp_path: Path) -> None:
    clock, f = Clock(), tmp_path / "a.raw"
    s = _settler(clock)
    f.write_bytes(b"v1")
    s.found(f)
    s.closed(f)
    f.write_bytes(b"version two")  # reopened and appended before we took it
    assert s.take_ready() == []
    clock.now += 2.5
    assert [st.st_size for _, st in s.take_ready()] == [len(b"version two")]


def test_in_use_file_is_held_back(tmp_path: Path) -> None:
    clock, f = Clock(), tmp_path / "a.raw"
    s = _settler(clock, in_use=True)
    f.write_bytes(b"data")
    s.found(f)
    clock.now += 10
    assert s.take_ready() == [] and s.waiting == 1


def test_vanished_and_forgotten_files_leave_the_set(tmp_path: Path) -> None:
    clock = Clock()
    s = _settler(clock)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    s.found(a)
    s.found(b)
    a.unlink()
    s.forget(b)
    clock.now += 5
    assert s.take_ready() == [] and s.waiting == 0
