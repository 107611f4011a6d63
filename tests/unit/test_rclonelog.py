"""rclone's log lines into trayagent's log file: read from the pipe in chunks, several lines per record,
each line still written with its own prefix; the "Copied" lines counted. A pipe stands in for rclone's
stderr (the lines are rclone's own format); the real rclone's are checked by the upload tests."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trayagent.logs import setup_logging
from trayagent.storage.rclonelog import LineReader, LogPump

PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+)\s+\d+ trayagent\.rclone\.process: (.*)$")


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
