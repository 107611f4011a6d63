"""Windows-safe code paths (issue 21): the process lock, one log file per process, how trayagent starts
itself (frozen or not), and `trayagent --version`."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trayagent import __version__
from trayagent.logs import log_file_for, prune_logs
from trayagent.platform import selfcmd
from trayagent.platform.autostart import agent_command
from trayagent.platform.lock import Busy, ProcessLock

HOLD = ("import sys, time; from pathlib import Path; from trayagent.platform.lock import ProcessLock\n"
        "held = ProcessLock(Path(sys.argv[1])); held.acquire(); print('held', flush=True); time.sleep(60)")


@pytest.fixture
def holder(tmp_path: Path) -> Any:
    """Another process holding the lock, as a second trayagent would."""
    lock = tmp_path / "run" / "agent.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield lock, proc
    proc.kill()
    proc.wait()


def test_busy_names_the_holder_without_reading_the_locked_file(holder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows a locked byte range cannot be read by another process (PermissionError): the old lock
    read the holder's pid from the locked file and died with a traceback. Windows' refusal is simulated
    here (Linux locks are advisory): any read of the lock file raises PermissionError."""
    lock, proc = holder
    real_open = builtins.open

    class Unreadable:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def read(self, *a: Any) -> str:
            raise PermissionError(13, "Permission denied (locked region)")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    def windows_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(file, *args, **kwargs)
        return Unreadable(fh) if Path(str(file)) == lock else fh

    monkeypatch.setattr(builtins, "open", windows_open)
    with pytest.raises(Busy) as info:
        ProcessLock(lock, "this queue").acquire()
    assert info.value.message == f"another trayagent process (pid {proc.pid}) is working on this queue"


def test_lock_is_released_with_its_holder(holder: Any) -> None:
    lock, proc = holder
    proc.kill()
    proc.wait()
    with ProcessLock(lock) as mine:
        assert (lock.parent / "agent.lock.pid").read_text() == str(os.getpid())
        with pytest.raises(Busy):
            ProcessLock(lock).acquire()  # a second lock in the same process is refused too
    ProcessLock(lock).acquire()  # released by the with block
    assert mine is not None


# -- logs -------------------------------------------------------------------------------------------
def _run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAYAGENT_HOME": str(home), "TRAYAGENT_SITE_CONFIG": str(home / "none.toml")}
    env.pop("TRAYAGENT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "trayagent.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_each_process_writes_a_log_file_of_its_own(tmp_path: Path) -> None:
    """Processes side by side never share (and so never rotate) one file: two uploads, two files."""
    home = tmp_path / "home"
    for name in ("a", "b"):
        src = tmp_path / name
        src.mkdir()
        (src / "f.dat").write_bytes(b"x" * 10)
    procs = [subprocess.Popen([sys.executable, "-m", "trayagent.cli", "upload", str(tmp_path / n), "--dataset", n],
                              env={**os.environ, "TRAYAGENT_HOME": str(home)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in ("a", "b")]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    logs = sorted((home / "logs").iterdir())
    assert len(logs) == 2 and all(p.name.startswith("upload-") and p.suffix == ".log" for p in logs), logs
    assert {p.name.rsplit("-", 1)[1] for p in logs} == {f"{p.pid}.log" for p in procs}
    for log in logs:  # each holds its own upload's rclone lines
        assert "Copied" in log.read_text()


def test_a_command_that_logs_nothing_leaves_no_file(tmp_path: Path) -> None:
    assert _run_cli(tmp_path / "home", "config", "check").returncode == 0
    assert not any((tmp_path / "home" / "logs").iterdir())


@pytest.mark.posix  # Windows: a running process's file is kept because deleting an open file fails
def test_prune_removes_old_files_of_ended_processes_only(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    old = time.time() - 30 * 86400
    ended = log_file_for(logs, "upload", pid=2**22 + 12345, now=old)   # no such process
    running = log_file_for(logs, "agent", pid=os.getpid(), now=old)     # this one runs
    recent = log_file_for(logs, "status", pid=2**22 + 12346)
    legacy = logs / "trayagent.log"                                       # the shared file of old versions
    for path in (ended, running, recent, legacy):
        path.write_text("x")
        if path is not recent:
            os.utime(path, (old, old))
    assert set(prune_logs(logs)) == {ended, legacy}
    assert sorted(logs.iterdir()) == sorted([running, recent])


def test_prune_keeps_at_most_the_newest_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(8):
        path = logs / f"status-20260101-0000{i:02d}-{2**22 + i}.log"
        path.write_text("x")
        os.utime(path, (1_700_000_000 + i, 1_700_000_000 + i))
    prune_logs(logs, keep_days=10_000, keep_files=5)
    assert sorted(p.name.split("-")[2] for p in logs.iterdir()) == ["000003", "000004", "000005", "000006",
                                                                    "000007"]


# -- starting trayagent itself -------------------------------------------------------------------------
def test_self_command_installed_and_frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert selfcmd.self_command("dialog", "settings") == [sys.executable, "-m", "trayagent.cli", "dialog", "settings"]
    assert agent_command() == [sys.executable, "-m", "trayagent.cli", "agent"]
    exe = tmp_path / "bundle" / "trayagent"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    monkeypatch.setattr(sys, "_MEIPASS", str(exe.parent / "_internal"), raising=False)
    assert selfcmd.self_command("dialog", "settings") == [str(exe), "dialog", "settings"]
    assert agent_command() == [str(exe), "agent"]
    assert selfcmd.bundle_dir() == exe.parent / "_internal"


def test_version_option(tmp_path: Path) -> None:
    out = _run_cli(tmp_path / "home", "--version")
    assert (out.returncode, out.stdout) == (0, f"trayagent {__version__}\n")
