"""Unit tests for trayagent.cli.progressbar: the one-line terminal bar and its number formatting."""

from __future__ import annotations

import io

import pytest

from trayagent.cli.progressbar import ProgressBar, human_bytes, human_seconds, render
from trayagent.pipeline.progress import Progress


def _progress(**kw: object) -> Progress:
    args: dict[str, object] = {"dataset": "d", "counts": {"pending": 6, "registered": 4},
                               "bytes_total": 2_000_000, "bytes_done": 500_000, "rate": 1500.0, "eta": 65.0}
    args.update(kw)
    return Progress(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1500, "1.5 kB"),
                                         (999_999, "1000.0 kB"), (2_500_000, "2.5 MB"), (3e9, "3.0 GB"),
                                         (4.2e12, "4.2 TB"), (5e15, "5000.0 TB")])
def test_human_bytes(n: float, text: str) -> None:
    assert human_bytes(n) == text


@pytest.mark.parametrize(("s", "text"), [(None, "--:--"), (0, "00:00"), (59.9, "00:59"), (65, "01:05"),
                                         (3599, "59:59"), (3600, "1:00:00"), (3661, "1:01:01"),
                                         (36000 + 61, "10:01:01")])
def test_human_seconds(s: float | None, text: str) -> None:
    assert human_seconds(s) == text


def test_render_shows_files_bytes_rate_and_eta() -> None:
    line = render(_progress(), 120)
    assert "4/10 files" in line
    assert "500.0 kB/2.0 MB" in line
    assert "1.5 kB/s" in line
    assert "ETA 01:05" in line
    assert "failed" not in line and "waiting" not in line


def test_render_shows_failed_and_waiting() -> None:
    line = render(_progress(counts={"pending": 1, "registered": 2, "failed": 3}, waiting="storage unreachable"),
                  200)
    assert "5/6 files" in line  # failed files are done, too
    assert "3 failed" in line
    assert line.endswith("waiting: storage unreachable")


def test_render_unknown_eta() -> None:
    assert "ETA --:--" in render(_progress(eta=None), 120)


@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 200])
def test_render_fits_the_width(width: int) -> None:
    p = _progress(counts={"pending": 10**6, "failed": 12345}, bytes_total=10**13, waiting="x" * 80)
    line = render(p, width)
    assert len(line) <= width - 1
    assert line.startswith("[")


@pytest.mark.parametrize(("done", "filled"), [(0, 0), (500_000, 7), (1_000_000, 15), (2_000_000, 30),
                                              (5_000_000, 30)])
def test_bar_fill_follows_bytes(done: int, filled: int) -> None:
    line = render(_progress(bytes_done=done), 200)
    bar = line[1:line.index("]")]
    assert len(bar) == 30
    assert bar.count("#") == filled and bar == "#" * filled + "." * (30 - filled)


def test_bar_fill_falls_back_to_files_without_bytes() -> None:
    line = render(_progress(bytes_total=0, bytes_done=0), 200)
    bar = line[1:line.index("]")]
    assert bar.count("#") == 12  # 4 of 10 files


def test_empty_progress_renders_empty_bar() -> None:
    line = render(_progress(counts={}, bytes_total=0, bytes_done=0), 200)
    assert "#" not in line[: line.index("]")]
    assert "0/0 files" in line


def test_progress_bar_only_on_terminals() -> None:
    assert ProgressBar.for_stream(io.StringIO()) is None

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(ProgressBar.for_stream(Tty()), ProgressBar)
    assert ProgressBar.for_stream(Tty(), enabled=False) is None


def test_progress_bar_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    out = io.StringIO()
    bar = ProgressBar(out)
    bar.update(_progress())
    bar.update(_progress())  # within 0.2 s and unfinished: skipped
    bar.update(_progress(counts={"registered": 10}))  # finished: always drawn
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2
    assert "10/10 files" in text and text.endswith("\n")
    assert all(len(chunk.rstrip("\n")) == 59 for chunk in text.split("\r")[1:])
