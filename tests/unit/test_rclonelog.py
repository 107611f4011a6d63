"""rclone's log lines into trayagent's log file: read from the pipe in chunks, several lines per record,
each line still written with its own prefix; the "Copied" lines counted; lines that repeat (an outage:
the same error for every file and call) folded into the first one and a count. A pipe stands in for
rclone's stderr (the lines are rclone's own format); the real rclone's are checked by the upload tests
and tests/integration/test_outage_log_noise.py."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from trayagent.logfold import RepeatCollapser, more_like_it, repeat_key
from trayagent.logs import COLLAPSE, FOLD, setup_logging
from trayagent.storage.rclonelog import LineReader, LogPump

PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+)\s+\d+ trayagent\.rclone\.process: (.*)$")
ANY_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+)\s+\d+ trayagent[.\w]*: (.*)$")


def rclone_line(level: str, text: str) -> bytes:
    return f"2026/12/02 20:00:00 {level:<6}: {text}\n".encode()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "upload-test.log"
    setup_logging(path, lambda text: text.replace("s3cret", "***"))
    return path


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """(read end, write end); each test closes the write end (rclone's exit), the read end is closed here."""
    r, w = os.pipe()
    yield r, w
    os.close(r)


def _pump(reader: LineReader, pump: LogPump) -> threading.Thread:
    thread = threading.Thread(target=pump.run, args=(reader, []), daemon=True)
    thread.start()
    return thread


def test_a_burst_is_logged_line_by_line_with_prefixes_and_counted(log_file: Path, pipe: tuple[int, int]) -> None:
    r, w = pipe
    records: list[logging.LogRecord] = []
    counter = logging.Handler()
    counter.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("trayagent.rclone.process").addHandler(counter)
    pump = LogPump(lambda text: text.replace("s3cret", "***"))
    thread = _pump(LineReader(r), pump)
    burst = b"".join(rclone_line("INFO", f"d/f{i:04d}.dat: Copied (new)") for i in range(3000))
    os.write(w, rclone_line("NOTICE", "one line on its own"))
    assert pump.wait_copies(0, 0, 5)
    for start in range(0, len(burst), 7000):  # chunks that end mid-line
        os.write(w, burst[start:start + 7000])
    os.write(w, rclone_line("ERROR", "d/x.dat: Failed to copy: token s3cret refused"))
    os.write(w, b"a last line without its newline")
    os.close(w)
    thread.join(10)
    assert not thread.is_alive()
    logging.getLogger("trayagent.rclone.process").removeHandler(counter)
    assert pump.copied() == 3000 and pump.wait_copies(0, 3000, 0)
    assert len(records) < 60  # what arrived together went out together (3,000 records before)
    lines = log_file.read_text().splitlines()
    parsed = [PREFIX.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m][:3]
    got = [(m.group(1), m.group(2)) for m in parsed if m]
    assert got[0] == ("INFO", "one line on its own")
    assert got[1:3001] == [("INFO", f"d/f{i:04d}.dat: Copied (new)") for i in range(3000)]
    assert got[3001:] == [("ERROR", "d/x.dat: Failed to copy: token *** refused"),
                          ("INFO", "a last line without its newline")]


def test_lines_of_another_level_are_not_merged_and_order_is_kept(log_file: Path, pipe: tuple[int, int]) -> None:
    r, w = pipe
    os.write(w, b"".join([rclone_line("INFO", "a: Copied (new)"), rclone_line("ERROR", "b: Failed"),
                          rclone_line("INFO", "c: Copied (new)"), rclone_line("DEBUG", "hidden at INFO")]))
    os.close(w)
    pump = LogPump(lambda text: text)
    _pump(LineReader(r), pump).join(10)
    got = [PREFIX.match(line) for line in log_file.read_text().splitlines()]
    assert [(m.group(1), m.group(2)) for m in got if m] == [("INFO", "a: Copied (new)"), ("ERROR", "b: Failed"),
                                                             ("INFO", "c: Copied (new)")]
    assert pump.copied() == 2


def test_a_line_longer_than_the_limit_is_taken_as_it_is(pipe: tuple[int, int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = pipe
    monkeypatch.setattr(LineReader, "MAX_LINE", 100)
    reader = LineReader(r)
    os.write(w, b"x" * 150)
    assert reader.lines() == ["x" * 150]
    os.write(w, b"tail\n")
    assert reader.lines() == ["tail"]
    os.close(w)
    assert reader.lines() is None


# -- repeats folded -----------------------------------------------------------------------------------

REFUSED = ('Failed to copy: unchunked simple update failed: Put "http://127.0.0.1:{port}/p/{name}": '
           "dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_lines_that_differ_only_in_file_address_timing_or_attempt_are_one_kind() -> None:
    same = [f"d/f{i}.bin: " + REFUSED.format(port=40000 + i, name=f"d/f{i}.bin") for i in range(3)]
    same.append("with space/ü.h5: " + REFUSED.format(port=1, name="with%20space/%C3%BC.h5"))
    assert len({repeat_key(line) for line in same}) == 1
    notices = ["d/f1.bin: read metadata failed; retry in 0.8 s (attempt 1)",
               "other.h5: read metadata failed; retry in 13.5 s (attempt 12)",
               "x: read metadata failed; retry in 2m30.5s (attempt 3)"]
    assert len({repeat_key(line) for line in notices}) == 1
    assert repeat_key("pacer: low level retry 1/3 (error EOF)") == repeat_key("pacer: low level retry 3/3 (error EOF)")
    assert (repeat_key("read tcp 127.0.0.1:42124->127.0.0.1:52675: x")
            == repeat_key("read tcp [::1]:1->[::1]:2: x"))


def test_lines_that_say_something_else_stay_apart() -> None:
    keys = [repeat_key(line) for line in (
        "d/a.bin: Failed to copy: 403 Forbidden",
        "d/a.bin: Failed to copy: 404 Not Found",  # another status code
        "d/a.bin: Failed to copy: 507 Insufficient Storage",
        "d/a.bin: Failed to copy: failed to open source object: open /src/a.bin: permission denied",
        "d/b.bin: Failed to copy: failed to open source object: open /src/b.bin: permission denied",  # its path
        "d/a.bin: Failed to copy: connection refused",
        "d/a.bin: Failed to copy: connection reset by peer")]
    assert len(set(keys)) == len(keys)
    assert repeat_key("a: b: c", subject=False) != repeat_key("x: b: c", subject=False)


def test_the_first_passes_repeats_are_counted_and_a_count_comes_once_per_window() -> None:
    folds: RepeatCollapser[str] = RepeatCollapser(window=60)
    assert folds.offer("k", "first", 1000.0)
    assert [folds.offer("k", f"again {i}", 1000.0 + i) for i in range(1, 31)] == [False] * 30
    assert folds.offer("other", "another kind", 1010.0) and not folds.offer("other", "other again", 1011.0)
    assert folds.due(1059.0) == []  # the window is not over
    (held,) = folds.due(1060.0)
    assert (held.last, held.count, held.since) == ("again 30", 30, 1001.0)
    # still coming: counted again, one count per window, never one line each
    assert not folds.offer("k", "again 31", 1061.0) and not folds.offer("k", "again 32", 1100.0)
    assert [(h.last, h.count) for h in folds.due(1100.0)] == [("other again", 1)]
    assert [(h.last, h.count) for h in folds.due(1120.0)] == [("again 32", 2)]
    assert not folds.offer("other", "other once more", 1121.0)  # its count came out: a new window runs
    assert [(h.last, h.count) for h in folds.drain()] == [("other once more", 1)]
    assert folds.drain() == []


def test_a_kind_that_stopped_passes_again_after_its_window() -> None:
    folds: RepeatCollapser[str] = RepeatCollapser(window=60)
    assert folds.offer("k", "first", 0.0)
    assert folds.due(60.0) == []  # nothing held: forgotten
    assert folds.offer("k", "the next outage", 500.0)
    assert folds.offer("j", "first", 0.0) and folds.offer("j", "after its window, unswept", 61.0)


def test_beyond_the_kinds_it_follows_every_line_passes() -> None:
    folds: RepeatCollapser[str] = RepeatCollapser(window=60, max_keys=2)
    assert folds.offer("a", "a", 0) and folds.offer("b", "b", 0)
    assert folds.offer("c", "c", 0) and folds.offer("c", "c", 1)  # not followed: nothing is lost
    assert not folds.offer("a", "a", 1)


def test_the_count_ends_the_first_line_before_a_hint() -> None:
    assert more_like_it("x: refused\n  -> retried", 500, 0).splitlines()[1] == "  -> retried"
    assert more_like_it("x: refused", 500, 0).startswith("x: refused (and 499 more like it since ")
    assert more_like_it("x: refused", 1, 0).startswith("x: refused (once more, at ")


def _log_lines(log_file: Path, prefix: re.Pattern[str] = PREFIX) -> list[tuple[str, str]]:
    """(level, text) of each line; a hint line ("  -> ...") belongs to the record before it."""
    parsed = [prefix.match(line) for line in log_file.read_text().splitlines() if not line.startswith("  -> ")]
    assert all(parsed), log_file.read_text()[:2000]
    return [(m.group(1), m.group(2)) for m in parsed if m]


def test_an_outage_flood_from_rclone_is_one_line_and_a_count(log_file: Path, pipe: tuple[int, int]) -> None:
    """300 files in flight when storage went away: one error line each, one rc echo per call; the
    Copied lines between them all stay, and an error that says something else still shows."""
    r, w = pipe
    pump = LogPump(lambda text: text.replace("s3cret", "***"))
    thread = _pump(LineReader(r), pump)
    flood = []
    for i in range(300):
        flood.append(rclone_line("INFO", f"d/ok{i:03d}.dat: Copied (new)"))
        flood.append(rclone_line("ERROR", f"d/f{i:03d}.dat: " + REFUSED.format(port=40000 + i, name=f"d/f{i:03d}.dat")))
        flood.append(rclone_line("INFO", f'rc: "operations/{"stat" if i % 2 else "list"}": error: read metadata '
                                         f'failed: Propfind "http://s3cret@h:{i}/p": connection refused'))
    flood.insert(301, rclone_line("ERROR", "d/x.dat: Failed to copy: 403 Forbidden"))
    for line in flood + [rclone_line("NOTICE", "all lines before this one handled")]:
        os.write(w, line)
    wait_until(lambda: "all lines before this one handled" in log_file.read_text(), 10)
    # rclone still runs (an upload ends without waiting for its stderr to close) while the log file
    # is closed (logging.shutdown): the counts go out there
    _file_handler().close()
    assert thread.is_alive() and pump.copied() == 300
    os.close(w)
    thread.join(10)
    got = [line for line in _log_lines(log_file) if "before this one" not in line[1]]
    assert [text for _, text in got if "Copied" in text] == [f"d/ok{i:03d}.dat: Copied (new)" for i in range(300)]
    others = [(level, text) for level, text in got if "Copied" not in text]
    assert others[:2] == [("ERROR", "d/f000.dat: " + REFUSED.format(port=40000, name="d/f000.dat")),
                          ("INFO", 'rc: "operations/list": error: read metadata failed: Propfind "http://***@h:0/p": '
                                   "connection refused")]
    assert ("ERROR", "d/x.dat: Failed to copy: 403 Forbidden") in others
    assert len(others) == 5, others  # the two first, the 403, and a count of each kind at the end
    counts = {level: text for level, text in others[3:]}
    assert counts["ERROR"].startswith("d/f299.dat: " + REFUSED.format(port=40299, name="d/f299.dat")
                                      + " (and 298 more like it since ")
    assert counts["INFO"].startswith('rc: "operations/stat": error: read metadata failed: Propfind '
                                     '"http://***@h:299/p": connection refused (and 298 more like it since ')


def _file_handler() -> logging.Handler:
    return next(h for h in logging.getLogger("trayagent").handlers if isinstance(h, logging.FileHandler))


def test_retry_notices_are_folded_in_the_log_file_other_records_are_not(log_file: Path) -> None:
    engine = logging.getLogger("trayagent.pipeline.setbacks")
    verify = logging.getLogger("trayagent.pipeline.verify")
    for i in range(200):
        engine.warning("%s: %s; retry in %.1f s (attempt %d)", f"d/f{i}.bin", 'Propfind "http://h:1/p": refused',
                       i / 10, i + 1, extra=FOLD)
        verify.warning("cannot read back the stored files yet: %s",
                       f"storage http://127.0.0.1:{40000 + i}: refused\n  -> retried", extra={COLLAPSE: True})
        logging.getLogger("trayagent.ui.tray").info("tray: status %s", "Up to date")  # not folded: counted by tests
    engine.error("%s: %s", "d/gone.bin", "404 Not Found")
    engine.error("%s: %s", "d/gone2.bin", "404 Not Found")  # errors of trayagent's own: each file named
    _file_handler().close()  # the process ends: the counts go out
    got = _log_lines(log_file, ANY_PREFIX)
    notices = [text for _, text in got if "retry in" in text]
    assert notices[0] == 'd/f0.bin: Propfind "http://h:1/p": refused; retry in 0.0 s (attempt 1)'
    assert len(notices) == 2 and notices[1].startswith(
        'd/f199.bin: Propfind "http://h:1/p": refused; retry in 19.9 s (attempt 200) (and 198 more like it since ')
    reads = [text for _, text in got if "cannot read back" in text]
    assert reads[0] == "cannot read back the stored files yet: storage http://127.0.0.1:40000: refused"
    assert len(reads) == 2 and "127.0.0.1:40199: refused (and 198 more like it since " in reads[1]
    assert sum(text == "tray: status Up to date" for _, text in got) == 200
    assert ("ERROR", "d/gone.bin: 404 Not Found") in got and ("ERROR", "d/gone2.bin: 404 Not Found") in got


def test_a_notice_that_keeps_coming_is_counted_once_per_window(log_file: Path) -> None:
    """Storage down for 10 minutes, a notice every 5 s: one count per minute, not 120 lines."""
    log = logging.getLogger("trayagent.pipeline.engine")
    start = 1_800_000_000.0
    for i in range(120):
        record = log.makeRecord(log.name, logging.WARNING, __file__, 0, "storage unreachable (%s); retry in %.1f s",
                                ("connection refused", 5.0), None, extra=FOLD)
        record.created = start + 5 * i
        log.handle(record)
    _file_handler().close()
    got = [text for _, text in _log_lines(log_file, ANY_PREFIX)]
    assert got[0] == "storage unreachable (connection refused); retry in 5.0 s"
    assert len(got) == 11, got  # the first, a count for each of the 9 minutes that ended, the rest at the end
    counts = [int(m) for text in got[1:] for m in re.findall(r"\(and (\d+) more like it since ", text)]
    assert len(counts) == 10 and 1 + sum(n + 1 for n in counts) == 120  # every notice accounted for
