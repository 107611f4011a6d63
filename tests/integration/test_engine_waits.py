"""Every wait of the engine sleeps (issue 17.4): a real `trayagent upload` waiting for a login, or
for storage to come back, uses next to no CPU.

Measured from outside, as a user's `top` would: the process's own utime + stime in /proc/<pid>/stat
(rclone, its child, is not counted) over a few seconds of waiting. The engine used to leave its wake
event set after the scan, so each wait returned at once: 13-14 CPU-seconds in 20 s.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from agentctl import Trayagent
from datagen import make_many
from scicat_real import ACCOUNTS, RealScicat
from servers import WebDAVServer
from waiting import wait_until

WINDOW = 5.0  # seconds of waiting measured
MAX_SHARE = 0.15  # of one core: a sleeping wait with its periodic checks stays far below


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share_while(pid: int, seconds: float) -> float:
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def test_upload_before_the_catalogue_login_sleeps_then_catches_up(ta: Trayagent, real_scicat: RealScicat,
                                                                  tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 6, size=10_000)
    user, (password, group) = "beamuser", ACCOUNTS["beamuser"]
    proposal = f"waits-{secrets.token_hex(4)}"
    real_scicat.add_proposal(proposal, group, "engine waits")
    ta.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url}})
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "nologin", "--proposal", proposal, "--json")
    wait_until(lambda: ta.files_sent() == len(content) and "registration paused" in ta.log_text, 60,
               what="every file in storage and registration waiting for a login")
    share = cpu_share_while(proc.pid, WINDOW)
    assert proc.poll() is None, proc.communicate()
    assert share < MAX_SHARE, f"waiting for a login used {share:.0%} of a core"
    ta.run("login", "--user", user, "--password-stdin", input=password + "\n", check=True)
    out, err = proc.communicate(timeout=120)  # the paused registration retries by itself
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == len(content)


def test_storage_outage_mid_upload_sleeps_between_retries(ta: Trayagent, webdav_server: WebDAVServer,
                                                         tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 20, size=150_000, per_dir=10)
    ta.use_webdav(webdav_server, transfer={"bwlimit": "1M", "batch_files": 5})
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "outage", "--json")
    wait_until(lambda: ta.files_sent() >= 5, 60, what="first files sent")
    webdav_server.kill()
    # noticed within seconds (a probe when the copy stands still), not when rclone gives up (85-92 s)
    wait_until(lambda: "retry in" in ta.log_text, 30, what="the engine to notice the outage")
    share = cpu_share_while(proc.pid, WINDOW)
    assert proc.poll() is None, proc.communicate()
    assert share < MAX_SHARE, f"waiting for storage used {share:.0%} of a core"
    webdav_server.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == len(content)
