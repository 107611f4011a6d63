"""The headless agent and its control API, driven over HTTP as the dialogs and the CLI do."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from agentctl import Trayagent
from datagen import make_tree, tree_of
from scicat_real import RealScicat, unique
from waiting import stop_process, wait_until


class Api:
    def __init__(self, home: Path) -> None:
        info = json.loads((home / "run" / "agent.json").read_text())
        self.base = f"http://127.0.0.1:{info['port']}"
        self.token = (home / "run" / "agent.token").read_text().strip()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> requests.Response:
        hdrs = {"Authorization": f"Bearer {self.token}", **headers}
        return requests.request(method, self.base + path, json=body, headers=hdrs, timeout=30)


@pytest.fixture
def agent(ta: Trayagent) -> Iterator[tuple[subprocess.Popen[str], Api]]:
    proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", "--headless"], env=ta.env(),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (ta.home / "run" / "agent.json").exists(), 30, what="the agent's API")
        yield proc, Api(ta.home)
    finally:
        stop_process(proc, 20)


def test_token_host_and_origin_are_enforced(agent: tuple[subprocess.Popen[str], Api], ta: Trayagent) -> None:
    _, api = agent
    assert requests.get(api.base + "/api/status", timeout=10).status_code == 401
    assert requests.get(api.base + "/api/status", headers={"Authorization": "Bearer nope"},
                        timeout=10).status_code == 401
    assert api.call("GET", "/api/status", Origin="http://evil.example").status_code == 403
    assert api.call("GET", "/api/status", Host="evil.example").status_code == 403
    assert api.call("GET", "/api/status").status_code == 200
    assert (ta.home / "run" / "agent.token").stat().st_mode & 0o777 == 0o600


def test_cli_talks_to_the_running_agent(agent: tuple[subprocess.Popen[str], Api], ta: Trayagent,
                                        tmp_path: Path) -> None:
    _, api = agent
    content = make_tree(tmp_path / "d", ["a.dat", "sub/b.dat"])
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "via-agent")
    assert rc == 0 and out["files_ok"] == 2
    assert tree_of(ta.storage_dir / "no-proposal" / "via-agent") == content
    status = api.call("GET", "/api/status").json()
    assert [d["name"] for d in status["activity"]] == ["via-agent"]
    second = ta.run("agent", "--headless", timeout=30)
    assert second.returncode == 0 and "already running" in second.stderr


def test_upload_json_through_the_agent_is_the_standalone_result(agent: tuple[subprocess.Popen[str], Api],
                                                                ta: Trayagent, tmp_path: Path) -> None:
    """``upload --json`` through the agent prints what a standalone run prints, the catalogue's id of
    the dataset included (it printed "catalogue_id": null, a second, hand-built copy of the result)."""
    make_tree(tmp_path / "d", ["a.dat", "b.dat"])
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "with-id")
    assert rc == 0
    [entry] = [d for d in ta.catalogue_datasets() if d["name"] == "with-id"]
    assert out["catalogue_id"] == entry["id"] and entry["id"]
    assert set(out) == {"dataset", "files_ok", "files_failed", "bytes", "seconds", "failures", "catalogue_id",
                        "storage_path"}
    assert (out["dataset"], out["files_ok"], out["files_failed"], out["failures"]) == ("with-id", 2, 0, [])


def test_sigterm_stops_the_headless_agent_cleanly(agent: tuple[subprocess.Popen[str], Api], ta: Trayagent,
                                                 tmp_path: Path) -> None:
    """systemd and the desktop session stop the agent with SIGTERM: it must end at once, cleanly,
    even though the main thread only waits (a signal may be delivered to any of its threads)."""
    proc, _ = agent
    make_tree(tmp_path / "d", ["a.dat"])
    rc, _out = ta.upload_json(str(tmp_path / "d"), "--dataset", "before-stop")
    assert rc == 0
    for _ in range(3):  # the kernel picks the thread; a few signals make a lost one likely to show
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0
            break
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent ignored SIGTERM for {time.monotonic() - started:.0f} s")
    assert not (ta.home / "run" / "agent.json").exists()  # its API is closed and announced as such


def test_sync_stop_and_finalize_through_the_api(agent: tuple[subprocess.Popen[str], Api], ta: Trayagent,
                                                tmp_path: Path) -> None:
    _, api = agent
    (tmp_path / "w").mkdir()
    answer = api.call("POST", "/api/sync", {"paths": [str(tmp_path / "w")], "dataset": "live"}).json()
    (tmp_path / "w" / "frame1.raw").write_bytes(b"x" * 1000)
    wait_until(lambda: (ta.storage_dir / "no-proposal/live/frame1.raw").exists(), 30, what="sync upload")
    ds = answer["dataset_id"]
    started = time.monotonic()  # a wait on a dataset that does not complete ends at its timeout
    waited = api.call("POST", f"/api/datasets/{ds}/wait", {"timeout": 0.5}).json()
    assert waited["state"] == "active" and 0.4 < time.monotonic() - started < 5
    assert api.call("POST", f"/api/datasets/{ds}/wait", {"timeout": "soon"}).status_code == 400
    assert api.call("POST", "/api/datasets/999999/wait", {"timeout": 0.1}).status_code == 404
    assert api.call("GET", "/api/datasets/999999").status_code == 404
    assert api.call("POST", f"/api/datasets/{ds}/finalize").status_code == 200
    started = time.monotonic()  # ... and one on a dataset that completes ends when it does
    done = api.call("POST", f"/api/datasets/{ds}/wait", {"timeout": 30}).json()
    assert done["state"] == "complete" and done["files"]["registered"] == 1
    assert time.monotonic() - started < 25
    assert (ta.storage_dir / "no-proposal/live/ro-crate-metadata.json").exists()


def test_pause_resume_and_retry(agent: tuple[subprocess.Popen[str], Api], ta: Trayagent, tmp_path: Path) -> None:
    _, api = agent
    make_tree(tmp_path / "d", ["ok.dat"])
    (tmp_path / "d" / "later.dat").symlink_to(tmp_path / "missing.dat")
    assert api.call("POST", "/api/pause").json() == {"paused": True}
    ds = api.call("POST", "/api/upload", {"paths": [str(tmp_path / "d")], "dataset": "p"}).json()["dataset_id"]
    time.sleep(2)
    assert api.call("GET", f"/api/datasets/{ds}").json()["files"]["registered"] == 0
    assert api.call("GET", "/api/status").json()["agent"]["state"] == "paused"
    api.call("POST", "/api/resume")
    wait_until(lambda: api.call("GET", f"/api/datasets/{ds}").json()["state"] == "complete", 30, what="done")
    done = api.call("GET", f"/api/datasets/{ds}").json()
    assert done["files"]["failed"] == 1 and "broken symbolic link" in done["errors"][0]["reason"]
    (tmp_path / "missing.dat").write_bytes(b"now here")
    assert api.call("POST", f"/api/datasets/{ds}/retry").json() == {"retried": 1}
    wait_until(lambda: api.call("GET", f"/api/datasets/{ds}").json()["files"]["registered"] == 2, 30,
               what="the retried file registered")
    assert (ta.storage_dir / "no-proposal/p/later.dat").read_bytes() == b"now here"


def test_cli_says_so_when_the_agent_dies_under_it(ta: Trayagent, tmp_path: Path) -> None:
    """The CLI follows its upload through the agent; if the agent is killed meanwhile, the CLI ends
    with a message and what to do, not a traceback, and a rerun finishes the upload on its own."""
    ta.write_config({"transfer": {"bwlimit": "300k"}})
    content = make_tree(tmp_path / "d", ["a.dat", "b.dat"], size=400_000)
    agent_proc = ta.popen("agent", "--headless")
    try:
        wait_until(lambda: (ta.home / "run" / "agent.json").exists(), 30, what="the agent's API")
        cli = ta.popen("upload", str(tmp_path / "d"), "--dataset", "orphaned", "--json")
        wait_until(lambda: "orphaned" in ta.log_text, 30, what="the agent to take the upload")
        agent_proc.kill()
        _, err = cli.communicate(timeout=60)
    finally:
        stop_process(agent_proc, 10)
    assert cli.returncode == 1
    assert "the agent is not answering" in err and "Traceback" not in err
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "orphaned", timeout=120)
    assert rc == 0 and out["files_ok"] == 2
    assert tree_of(ta.storage_dir / "no-proposal" / "orphaned") == content


def test_login_route_with_scicat(ta: Trayagent, real_scicat: RealScicat) -> None:
    """Against the real SciCat backend (v4.27.0): login, proposal prefill, refusals, logout."""
    ta.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url}})
    proc = subprocess.Popen([sys.executable, "-m", "trayagent.cli", "agent", "--headless"], env=ta.env(),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: (ta.home / "run" / "agent.json").exists(), 30, what="the agent's API")
        api = Api(ta.home)
        bad = api.call("POST", "/api/login", {"user": "beamuser", "password": "wrong"})
        assert bad.status_code == 401 and bad.json()["error"]
        good = api.call("POST", "/api/login", {"user": "beamuser", "password": "beamuser-pw"})
        assert good.status_code == 200 and "p20260123" in good.json()["groups"]
        mine, theirs = unique("2026"), unique("2026")
        real_scicat.add_proposal(mine, "p20260123", "Battery tomography", pi_firstname="Ada", pi_lastname="Byron")
        facts = api.call("GET", f"/api/proposals/{mine}").json()
        assert facts["title"] == "Battery tomography" and facts["pi"] == "Ada Byron"
        real_scicat.add_proposal(theirs, "p99999", "Someone else's beamtime")
        refused = api.call("GET", f"/api/proposals/{theirs}")
        assert refused.status_code == 400 and f"may not read proposal {theirs}" in refused.json()["error"]
        assert "p20260123" in refused.json()["error"]  # says which groups the user has
        missing = api.call("GET", "/api/proposals/nope")
        assert missing.status_code == 400 and "does not exist" in missing.json()["error"]
        assert api.call("POST", "/api/logout").json() == {"logged_out": True}
        agent_state = api.call("GET", "/api/status").json()["agent"]
        assert agent_state["login_needed"] is True and agent_state["state"] == "logged-out"
    finally:
        proc.terminate()
        proc.wait(20)


def test_login_route_without_scicat_is_404(agent: tuple[subprocess.Popen[str], Api]) -> None:
    _, api = agent
    answer = api.call("POST", "/api/login", {"user": "x", "password": "y"})
    assert answer.status_code == 404 and "needs no login" in answer.json()["error"]
