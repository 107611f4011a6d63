"""What the terminal shows when things go half wrong: trayagent's message once, rclone's raw lines in
the log file only; what the scan skipped and why; a closed pipe ends a command quietly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agentctl import Trayagent

from trayagent.logs import setup_logging


def test_rclone_lines_go_to_the_log_file_only_and_trayagents_to_the_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "trayagent.log"
    setup_logging(log_file, lambda text: text)
    logging.getLogger("trayagent.rclone.process").error("a.bin: Failed to copy: 503 Service Unavailable")
    logging.getLogger("trayagent.engine").warning("a.bin: 503 Service Unavailable; retry in 1.0 s")
    logging.shutdown()
    err = capsys.readouterr().err
    assert "Failed to copy" not in err
    assert err.count("503 Service Unavailable") == 1 and "retry in 1.0 s" in err
    text = log_file.read_text()
    assert "Failed to copy" in text and "retry in 1.0 s" in text
    setup_logging(log_file, lambda text: text, verbose=True)  # -v: rclone's lines too
    logging.getLogger("trayagent.rclone.process").error("b.bin: Failed to copy: 503")
    assert "b.bin: Failed to copy" in capsys.readouterr().err


def odd_entries(root: Path, tmp_path: Path) -> tuple[Path, Path]:
    root.mkdir()
    (root / "a.bin").write_bytes(b"a")
    fifo = root / "pipe.fifo"
    os.mkfifo(fifo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.bin").write_bytes(b"b")
    link = root / "linked"
    link.symlink_to(elsewhere, target_is_directory=True)
    return fifo, link


def test_a_fifo_and_a_link_to_a_folder_are_reported_as_skipped(ta: Trayagent, tmp_path: Path) -> None:
    fifo, link = odd_entries(tmp_path / "run", tmp_path)
    ta.write_config({"storage": {"remote": str(tmp_path / "storage")}})
    for command in (("--dry-run",), ()):
        proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "odd", *command, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"skipped {fifo}: a FIFO (named pipe): only regular files are uploaded" in proc.stderr
        assert f"skipped {link}: a link to a folder" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "storage" / "no-proposal" / "odd").iterdir()) == [
        "a.bin", "ro-crate-metadata.json"]
    assert f"skipped {fifo}" in ta.log_text


def test_dry_run_into_a_closed_pipe_ends_quietly(ta: Trayagent, tmp_path: Path) -> None:
    """`trayagent upload --dry-run ... | head -1`: more lines than a pipe holds, reader gone."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(2000):
        (root / f"frame_{i:05d}_with_a_rather_long_name.bin").write_bytes(b"")
    script = (f'"{sys.executable}" -m trayagent.cli upload --dry-run "{root}" --dataset many | head -1; '
              'echo "exit=${PIPESTATUS[0]}" >&2')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ta.env(),
                          timeout=120, check=False)
    assert proc.stdout.count("\n") == 1 and "frame_00000" in proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert "exit=141" in proc.stderr  # as a Unix tool ended by SIGPIPE
