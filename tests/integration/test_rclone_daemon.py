"""The supervised rclone daemon, against the real rclone (local backend only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import stop_process, wait_until

from trayagent.errors import StorageError
from trayagent.storage import rclone
from trayagent.storage.process import find_rclone
from trayagent.storage.rcerrors import RcError
from trayagent.storage.rclone import RcloneDaemon

GO_DEFAULT_LIMIT = 2**63 - 1


def _memory_limit(daemon: RcloneDaemon) -> int:
    """rclone's current soft memory limit (a negative input only reads it)."""
    return int(daemon.call("debug/set-soft-memory-limit", {"mem-limit": -1})["existing-mem-limit"])


def _go_environment(daemon: RcloneDaemon) -> dict[str, str]:
    assert daemon.pid is not None
    raw = Path(f"/proc/{daemon.pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().partition("=") for item in raw if item.startswith(b"GO"))
    return {key: value for key, _, value in pairs}


def test_copied_lines_are_counted_and_end_the_wait_of_a_job(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for name in ("a.bin", "b c.bin", "d.bin"):
        (src / name).write_bytes(name.encode() * 100)
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    daemon.launch()  # not waited for: the first call waits
    try:
        before = daemon.copied_count()
        job = daemon.start_job("sync/copy", {"srcFs": str(src), "dstFs": str(dst)})
        status = daemon.wait_job(job, copies=(before, 3))
        assert status["success"] and status["finished"]
        assert sorted(p.name for p in dst.iterdir()) == ["a.bin", "b c.bin", "d.bin"]
        assert daemon.copied_count() - before == 3
    finally:
        daemon.stop()
    assert not daemon.alive()


def test_a_broken_binary_is_reported_at_the_first_call(tmp_path: Path) -> None:
    fake = tmp_path / "rclone"
    fake.write_text("#!/bin/sh\necho 'not rclone' >&2\nexit 3\n")
    fake.chmod(0o755)
    daemon = RcloneDaemon(str(fake), tmp_path / "run")
    daemon.launch()
    try:
        with pytest.raises(StorageError, match=r"rclone did not start.*not rclone"):
            daemon.call("core/version")
    finally:
        daemon.stop()


def test_bytes_are_uploaded_from_memory_without_a_scratch_file(tmp_path: Path) -> None:
    """The manifest path: small and large payloads land byte-identical; nothing is written to the
    runtime folder (no temporary file to delete after a big upload); odd names are refused."""
    dst, run = tmp_path / "dst", tmp_path / "run"
    dst.mkdir()
    small = '{"name": "ünïcode ✓"}\n'.encode()
    large = bytes(range(256)) * 8192  # 2 MiB: above rclone's default streaming cutoff of 100 KiB
    daemon = RcloneDaemon(find_rclone(), run)
    try:
        daemon.upload(str(dst), "small.json", small, {"LowLevelRetries": 1})
        daemon.upload(str(dst), "large.bin", large, {})
        assert (dst / "small.json").read_bytes() == small
        assert (dst / "large.bin").read_bytes() == large
        assert sorted(p.name for p in run.iterdir() if p.suffix not in (".pid", ".htpasswd")) == []
        for bad in ("", "a/b.json", 'quote".json', "line\nbreak.json"):
            with pytest.raises(ValueError, match="plain file name"):
                daemon.upload(str(dst), bad, small, {})
        (tmp_path / "a-file").write_text("not a folder")
        with pytest.raises(RcError):  # storage's refusal comes back as an rc error
            daemon.upload(str(tmp_path / "a-file" / "sub"), "x.json", small, {})
    finally:
        daemon.stop()


def test_an_idle_rclone_dies_with_its_killed_owner(tmp_path: Path) -> None:
    """kill -9 of the process that owns rclone ends rclone too, even when rclone has nothing to
    write (a busy one would also die of its broken log pipe): PR_SET_PDEATHSIG, set in the child
    between fork and exec from a function looked up beforehand."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom trayagent.storage.process import find_rclone\n"
            "from trayagent.storage.rclone import RcloneDaemon\n"
            "d = RcloneDaemon(find_rclone(), Path(sys.argv[1]))\nd.launch()\nd.call('core/version')\n"
            "print(d.pid, flush=True)\ntime.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        rcd = int(owner.stdout.readline())
        assert b"rclone" in Path(f"/proc/{rcd}/cmdline").read_bytes()
        owner.kill()
        owner.wait(10)
        wait_until(lambda: not Path(f"/proc/{rcd}").exists()
                   or b"rclone" not in Path(f"/proc/{rcd}/cmdline").read_bytes(), 10, what="rclone to end")
    finally:
        stop_process(owner, 5)


def test_a_process_about_to_exit_signals_rclone_without_waiting(tmp_path: Path) -> None:
    """At the end of a short command (os._exit next) `stop` signals rclone and returns; rclone
    then ends on its own. In a subprocess: the switch holds for the rest of its process."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom trayagent.storage import process, rclone\n"
            "d = rclone.RcloneDaemon(process.find_rclone(), Path(sys.argv[1]))\nd.call('core/version')\n"
            "waited = d._proc\nd.stop()\nprint('waited', waited.returncode is not None)\n"
            "process.end_without_waiting()\nd.call('core/version')\nleft = d._proc\nd.stop()\n"
            "print('left', left.returncode is None)\n"
            "print('ended', left.wait(10) is not None)\n"
            "print('files', sorted(p.name for p in Path(sys.argv[1]).iterdir()))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.stdout.splitlines() == ["waited True", "left True", "ended True", "files []"], out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_rclone_starts_without_garbage_collection_then_gets_go_defaults_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up with Go's collector off under a 256 MiB ceiling; once it serves and the hold is
    over, collection (GOGC 100) and Go's unlimited default come back."""
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    monkeypatch.setattr(rclone, "_GC_HELD_SECONDS", 30.0)
    held = RcloneDaemon(find_rclone(), tmp_path / "held")
    try:
        held.start()
        assert _go_environment(held) == {"GOGC": "off", "GOMEMLIMIT": "256MiB"}
        assert _memory_limit(held) == 256 << 20
    finally:
        held.stop()
    monkeypatch.setattr(rclone, "_GC_HELD_SECONDS", 0.05)
    released = RcloneDaemon(find_rclone(), tmp_path / "released")
    try:
        released.start()
        wait_until(lambda: _memory_limit(released) == GO_DEFAULT_LIMIT, 10, what="the default limit back")
        previous = released.call("debug/set-gc-percent", {"gc-percent": 100})["existing-gc-percent"]
        assert previous == 100
    finally:
        released.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_users_own_go_settings_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOGC", "50")
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    monkeypatch.setattr(rclone, "_GC_HELD_SECONDS", 0.05)
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    try:
        daemon.start()
        assert _go_environment(daemon) == {"GOGC": "50"}
        time.sleep(0.5)  # past the hold: nothing is released, since nothing was held
        assert daemon.call("debug/set-gc-percent", {"gc-percent": 50})["existing-gc-percent"] == 50
        assert _memory_limit(daemon) == GO_DEFAULT_LIMIT
    finally:
        daemon.stop()


def test_a_bandwidth_timetable_is_given_to_rclone_at_start_up(tmp_path: Path) -> None:
    """rclone's rc takes one rate only ("need exactly 1 bandwidth setting"): a timetable goes on
    rclone's command line, and asking for it again at run time is not an error."""
    timetable = "00:00,20M 12:00,30M"
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run", bwlimit=timetable)
    daemon.launch()
    try:
        daemon.set_bwlimit(timetable)  # what the uploader does once rclone runs: nothing to change
        rate = daemon.call("core/bwlimit")  # no rate: reads the limit in force
        assert rate["bytesPerSecond"] in (20 * 2**20, 30 * 2**20), rate
        daemon.set_bwlimit("5M")  # a single rate still changes at run time
        assert daemon.call("core/bwlimit")["bytesPerSecond"] == 5 * 2**20
        daemon.set_bwlimit("08:00,1M 20:00,off")  # a new timetable: kept for the next start
        assert daemon.bwlimit == "08:00,1M 20:00,off"
        assert daemon.call("core/bwlimit")["bytesPerSecond"] == 5 * 2**20
    finally:
        daemon.stop()


def test_upload_with_a_bandwidth_timetable_in_the_config_works(tmp_path: Path) -> None:
    home, src = tmp_path / "home", tmp_path / "src"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(f'[storage]\nremote = "{tmp_path / "storage"}"\n'
                                                 '[transfer]\nbwlimit = "08:00,20M 20:00,off"\n')
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 1000)
    env = {**os.environ, "TRAYAGENT_HOME": str(home)}
    for command in (["config", "check"], ["upload", str(src), "--dataset", "tt"]):
        proc = subprocess.run([sys.executable, "-m", "trayagent.cli", *command], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "storage" / "no-proposal" / "tt" / "a.bin").read_bytes() == b"a" * 1000


def test_a_start_that_cannot_write_its_pid_file_leaves_nothing_running_or_behind(tmp_path: Path) -> None:
    """As on a full disk, where the rc password file still fitted and the pid file did not."""
    run = tmp_path / "run"
    run.mkdir()
    (run / f"rclone-rcd-{os.getpid()}.pid").mkdir()  # the pid file cannot be written
    daemon = RcloneDaemon(find_rclone(), run)
    with pytest.raises(OSError):
        daemon.launch()
    assert daemon.pid is None and not daemon.alive()
    assert not list(run.glob("rclone-rc-*.htpasswd"))
