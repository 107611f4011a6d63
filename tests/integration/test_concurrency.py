"""Two trayagent processes on the same dataset, as users start them: real CLI processes, real rclone.

The first run owns the dataset until it ends; a second one is refused before it touches the queue
(issue 18.1: it used to re-open the dataset's scan first, and the run it was refused by then waited
for that scan forever, at 100 % of a core).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

from agentctl import Trayagent
from datagen import make_many, tree_of
from waiting import wait_until

SLOW = {"transfer": {"bwlimit": "1M", "batch_files": 4}}


def _dataset_row(ta: Trayagent, name: str) -> dict[str, object]:
    with sqlite3.connect(ta.home / "data" / "queue.sqlite") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM datasets WHERE name=?", (name,)).fetchone())


def _finished(ta: Trayagent, proc: subprocess.Popen[str], name: str, content: dict[str, bytes]) -> None:
    """The owner ends by itself (a hang fails here within a minute), with every file once,
    the manifest next to the data and the dataset complete."""
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == len(content)
    folder = ta.storage_dir / "no-proposal" / name
    assert tree_of(folder) == content
    assert (folder / "ro-crate-metadata.json").is_file()
    assert len(ta.catalogue_files(name)) == len(content)
    row = _dataset_row(ta, name)
    assert row["state"] == "complete" and row["scan_done"] == 1, row


def _refused(proc: subprocess.CompletedProcess[str] | tuple[int, str], name: str) -> None:
    code, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert code == 2, err
    assert "another trayagent process" in err and f"dataset {name!r}" in err, err
    assert "Traceback" not in err


def test_second_upload_mid_upload_is_refused_and_the_first_finishes(ta: Trayagent, tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 16, size=200_000, per_dir=8)
    ta.write_config(SLOW)
    args = ("upload", str(tmp_path / "d"), "--dataset", "twice")
    first = ta.popen(*args, "--json")
    wait_until(lambda: ta.files_sent() >= 4, 60, what="the first run mid-upload")
    _refused(ta.run(*args, timeout=60), "twice")
    _finished(ta, first, "twice", content)


def test_two_uploads_started_together_one_runs_one_is_refused(ta: Trayagent, tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 16, size=200_000, per_dir=8)
    ta.write_config(SLOW)
    args = ("upload", str(tmp_path / "d"), "--dataset", "together", "--json")
    procs = [ta.popen(*args), ta.popen(*args)]
    wait_until(lambda: any(p.poll() is not None for p in procs), 60, what="one of the two to be refused")
    loser = next(p for p in procs if p.poll() is not None)
    _refused((loser.returncode, loser.communicate()[1]), "together")
    _finished(ta, next(p for p in procs if p is not loser), "together", content)


def test_upload_during_resume_is_refused_and_resume_finishes(ta: Trayagent, tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 16, size=200_000, per_dir=8)
    ta.write_config(SLOW)
    args = ("upload", str(tmp_path / "d"), "--dataset", "resumed")
    killed = ta.popen(*args)
    wait_until(lambda: ta.files_sent() >= 4, 60, what="the first run mid-upload")
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    resume = ta.popen("resume", "--json")
    wait_until(lambda: (ta.home / "run" / f"rclone-rcd-{resume.pid}.pid").exists()
               and ta.queue_states().get("uploading"), 60, interval=0.05, what="resume mid-upload")
    second = ta.run(*args, timeout=60)
    assert resume.poll() is None, "resume ended before the second upload: nothing was tested"
    _refused(second, "resumed")
    out, err = resume.communicate(timeout=90)
    assert resume.returncode == 0, err
    assert [o["files_ok"] for o in json.loads(out)] == [len(content)]
    assert tree_of(ta.storage_dir / "no-proposal" / "resumed") == content
    assert _dataset_row(ta, "resumed")["state"] == "complete"
