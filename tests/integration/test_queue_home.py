"""A queued dataset keeps the storage and catalogue it was defined with (issue 18.2).

A dataset queued with ``--config dav.toml`` (WebDAV) and interrupted must not be finished by a run
under another configuration (the embedded local storage): `resume`, the agent and a re-run are
refused with a message naming the dataset and the configuration that finishes it; that
configuration then finishes it where it belongs. Real CLI processes, real WebDAV, real rclone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from agentctl import Trayagent
from datagen import make_many, tree_of
from scicat_real import RealScicat
from servers import WebDAVServer
from waiting import stop_process, wait_until

SLOW = {"bwlimit": "1M", "batch_files": 4}


def interrupted_on_webdav(ta: Trayagent, server: WebDAVServer, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A dataset queued with --config dav.toml, killed mid-upload; no default configuration file."""
    content = make_many(tmp_path / "d", 12, size=200_000, per_dir=12)
    ta.use_webdav(server, transfer=SLOW)
    dav = tmp_path / "dav.toml"
    (ta.home / "config" / "config.toml").rename(dav)
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "moved", "--proposal", "p", "--config", str(dav))
    wait_until(lambda: ta.files_sent() >= 4, 60, what="mid-upload")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert ta.queue_states().get("registered", 0) < len(content)
    return dav, content


def refused(proc: subprocess.CompletedProcess[str], dav: Path) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "dataset 'moved'" in proc.stderr and f"--config {dav}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def nothing_local(ta: Trayagent) -> None:
    assert not any(ta.storage_dir.rglob("*.bin")), sorted(ta.storage_dir.rglob("*"))


def test_resume_under_another_storage_is_refused_then_finished_where_queued(
        ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    dav, content = interrupted_on_webdav(ta, webdav_server, tmp_path)
    refused(ta.run("resume", timeout=60), dav)
    nothing_local(ta)
    rc = ta.run("resume", "--json", "--config", str(dav), timeout=120)
    assert rc.returncode == 0, rc.stderr
    assert [o["files_ok"] for o in json.loads(rc.stdout)] == [len(content)]
    assert tree_of(Path(webdav_server.root) / "p" / "moved") == content
    assert len(ta.catalogue_files("moved")) == len(content)
    nothing_local(ta)


def test_agent_under_another_storage_leaves_it_queued(ta: Trayagent, webdav_server: WebDAVServer,
                                                      tmp_path: Path) -> None:
    dav, content = interrupted_on_webdav(ta, webdav_server, tmp_path)
    agent = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", "--headless"], env=ta.env(),
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (ta.home / "run" / "agent.json").exists(), 30, what="the agent's API")
        said = "dataset 'moved' was queued with the configuration file"
        wait_until(lambda: said in ta.log_text or any(ta.storage_dir.rglob("*.bin")), 30,
                   what="the agent to report the dataset it cannot finish")
        nothing_local(ta)
        assert said in ta.log_text
        wait_until(lambda: "notification: Dataset left in the queue: dataset 'moved'" in ta.log_text, 10,
                   what="the user to be told")
    finally:
        stop_process(agent, 20)
    assert ta.queue_states().get("registered", 0) < len(content)
    assert ta.run("resume", "--config", str(dav), timeout=120).returncode == 0
    assert tree_of(Path(webdav_server.root) / "p" / "moved") == content


def test_rerun_under_another_catalogue_is_refused(ta: Trayagent, webdav_server: WebDAVServer,
                                                  real_scicat: RealScicat, tmp_path: Path) -> None:
    """Same storage, but the configuration now names a SciCat catalogue: the dataset's files are
    registered in the local catalogue, and are not re-filed under a SciCat id."""
    dav, _ = interrupted_on_webdav(ta, webdav_server, tmp_path)
    scicat = tmp_path / "scicat.toml"
    scicat.write_text(dav.read_text() + f'\n[catalogue]\nkind = "scicat"\nurl = "{real_scicat.url}"\n')
    proc = ta.run("upload", str(tmp_path / "d"), "--dataset", "moved", "--proposal", "p", "--config",
                  str(scicat), timeout=60)
    refused(proc, dav)
    assert "catalogue" in proc.stderr
