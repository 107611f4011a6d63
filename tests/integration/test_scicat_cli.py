"""End to end through the real CLI into the REAL SciCat backend (v4.27.0): `trayagent login`, `upload`
(again, and after a file changed), `sync`, `logout`, with the embedded local storage, a WebDAV URL and
a named rclone remote.

What SciCat holds is read back with plain ``requests`` (``ScicatReader``), as a SciCat client none of
us wrote would: exactly one dataset per upload folder with its sourceFolder, owner, ownerGroup,
proposalId, description, size and numberOfFiles, and every file once with its current size, ``chk``
and ``chkAlg``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from datagen import blake3
from scicat_real import RealScicat, ScicatReader, unique
from waiting import stop_process, wait_for


def _source(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"hello\n", "empty.dat": b"", "sub/deep/b.bin": bytes(range(256)) * 4000,
             "sub/spaced name \u00e9.txt": b"odd name\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _secrets_absent(ta: Trayagent, *secrets: str) -> None:
    for path in ta.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"a secret leaked into {path}"


def assert_complete(reader: ScicatReader, folder: str, local: dict[str, bytes], *, proposal: str,
                    description: str, chk: Any = lambda b: hashlib.md5(b).hexdigest(),
                    alg: str = "md5") -> dict[str, Any]:
    """Exactly one dataset in ``folder``, complete and correct, each file once and current."""
    found = reader.datasets_in(folder)
    assert len(found) == 1, f"{len(found)} datasets in {folder}"
    d = found[0]
    assert (d["sourceFolder"], d["owner"], d["ownerGroup"], d["proposalId"], d["description"]) == \
        (folder, "beamuser", "p20260123", proposal, description)
    assert (d["size"], d["numberOfFiles"]) == (sum(map(len, local.values())), len(local))
    files = reader.files(d["pid"])
    assert Counter(f["path"] for f in files) == Counter(list(local)), "each file exactly once"
    for f in files:
        data = local[f["path"]]
        assert (f["size"], f["chk"], f["chkAlg"]) == (len(data), chk(data), alg), f["path"]
    return d


@pytest.fixture
def scicat_ta(ta: Trayagent, real_scicat: RealScicat) -> Trayagent:
    """A trayagent whose catalogue is the real backend; beamuser not yet logged in."""
    ta.scicat = {"kind": "scicat", "url": real_scicat.url}  # type: ignore[attr-defined]
    return ta


def _login(ta: Trayagent, user: str = "beamuser", password: str = "beamuser-pw") -> str:
    out = ta.run("login", "--user", user, "--password-stdin", input=password + "\n", check=True)
    return out.stdout


def test_default_storage_upload_rerun_modified_file_logout(scicat_ta: Trayagent, real_scicat: RealScicat,
                                                           tmp_path: Path) -> None:
    ta, reader = scicat_ta, real_scicat.reader()
    name, proposal = unique("run"), unique("2026")
    real_scicat.add_proposal(proposal, "p20260123", "Stones under X-rays")
    src = tmp_path / name
    local = _source(src)
    ta.write_config({"catalogue": ta.scicat})  # type: ignore[attr-defined]
    assert "p20260123" in _login(ta)
    args = (str(src), "--dataset", name, "--proposal", proposal, "--description", "a stone")

    code, result = ta.upload_json(*args)
    assert code == 0, result
    folder = "/" + result["storage_path"]
    d = assert_complete(reader, folder, local, proposal=proposal, description="a stone")
    assert d["pid"] == result["catalogue_id"] and "sourceFolderHost" not in d  # a bare hostname: left out
    assert d["scientificMetadata"]["trayagent"]["complete"] is True

    code, again = ta.upload_json(*args)  # the same upload again: nothing changes
    assert code == 0 and again["catalogue_id"] == d["pid"], again
    assert_complete(reader, folder, local, proposal=proposal, description="a stone")

    (src / "a.txt").write_bytes(b"hello again, longer now\n")  # issue 17.1, through the whole path
    local["a.txt"] = b"hello again, longer now\n"
    code, third = ta.upload_json(*args)
    assert code == 0 and third["catalogue_id"] == d["pid"], third
    assert_complete(reader, folder, local, proposal=proposal, description="a stone")
    assert (ta.storage_dir / result["storage_path"] / "a.txt").read_bytes() == local["a.txt"]

    token = real_scicat.login("beamuser")
    ta.run("login", "--token-stdin", input=token + "\n", check=True)
    _secrets_absent(ta, "beamuser-pw", token)
    ta.run("logout", check=True)


def test_webdav_storage_and_scicat_end_to_end(scicat_ta: Trayagent, real_scicat: RealScicat,
                                              webdav_server: Any, tmp_path: Path) -> None:
    """Real WebDAV server for the bytes, the real SciCat for the catalogue, the real CLI and keyring
    for both logins; the storage URL's host (an IP address) becomes sourceFolderHost."""
    ta, name, proposal = scicat_ta, unique("scan"), unique("2026")
    src = tmp_path / name
    local = _source(src)
    real_scicat.add_proposal(proposal, "p20260123", "Operando tomography of Li-ion cells")
    ta.use_webdav(webdav_server, catalogue={**ta.scicat, "owner_group": "p20260123"})  # type: ignore[attr-defined]
    _login(ta)
    code, result = ta.upload_json(str(src), "--dataset", name, "--proposal", proposal, "--description", "cells")
    assert code == 0, result
    stored = Path(webdav_server.root) / result["storage_path"]
    for rel, data in local.items():
        assert (stored / rel).read_bytes() == data
    d = assert_complete(real_scicat.reader(), "/" + result["storage_path"], local, proposal=proposal,
                        description="cells", chk=blake3, alg="blake3")
    assert d["sourceFolderHost"] == "127.0.0.1"
    _secrets_absent(ta, "beamuser-pw", webdav_server.password)


def test_named_rclone_remote_sends_its_endpoint_host(scicat_ta: Trayagent, real_scicat: RealScicat,
                                                     webdav_server: Any, tmp_path: Path) -> None:
    """Issue 17.2: a named remote's name is no URL host (SciCat refused every dataset); the host of
    the url in its rclone config is."""
    ta, name, proposal = scicat_ta, unique("named"), unique("2026")
    src = tmp_path / name
    local = _source(src)
    real_scicat.add_proposal(proposal, "p20260123", "Named remotes")
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[beamstore]\ntype = webdav\nurl = {webdav_server.url}\nvendor = other\n", encoding="utf-8")
    ta.write_config({"storage": {"remote": "beamstore:", "user": webdav_server.user, "rclone_config": str(conf)},
                     "catalogue": ta.scicat})  # type: ignore[attr-defined]
    ta.run("login", "storage", "--password-stdin", input=webdav_server.password + "\n", check=True)
    _login(ta)
    code, result = ta.upload_json(str(src), "--dataset", name, "--proposal", proposal, "--description", "named")
    assert code == 0, result
    d = assert_complete(real_scicat.reader(), "/" + result["storage_path"], local, proposal=proposal,
                        description="named", chk=blake3, alg="blake3")
    assert d["sourceFolderHost"] == "127.0.0.1"


def test_account_without_email_refused_before_upload_with_json_and_log(scicat_ta: Trayagent,
                                                                       tmp_path: Path) -> None:
    """Issue 17.3 and 17.5: SciCat refuses contactEmail "unknown". The upload stops before sending
    anything, says what to set, prints JSON with --json on exit 1, and the log file has it."""
    ta = scicat_ta
    src = tmp_path / "nomail"
    _source(src)
    ta.write_config({"catalogue": ta.scicat})  # type: ignore[attr-defined]
    _login(ta, "noemail", "noemail-pw")
    proc = ta.run("upload", str(src), "--dataset", unique("nomail"), "--json")
    assert proc.returncode == 1, proc
    answer = json.loads(proc.stdout)
    assert "contact email" in answer["error"] and "contact_email" in answer["hint"] and answer["exit_code"] == 1
    assert "contact_email" in proc.stderr and "Traceback" not in proc.stderr
    assert "contact email" in ta.log_text
    assert not any(p.is_file() for p in ta.storage_dir.rglob("*")) if ta.storage_dir.exists() else True


def test_sync_goes_on_through_a_refusal_and_catches_up_after_the_fix(scicat_ta: Trayagent,
                                                                     real_scicat: RealScicat,
                                                                     tmp_path: Path) -> None:
    """A catalogue refusal never stops sync mode: files written after it are still uploaded, the
    user is told (terminal, log file, `trayagent status`), and once the configuration is fixed
    registration catches up by itself, without a restart."""
    ta, name = scicat_ta, unique("sync")
    src = tmp_path / name
    src.mkdir()
    (src / "first.dat").write_bytes(b"first\n")
    ta.write_config({"catalogue": ta.scicat, "sync": {"quiet_seconds": 0.3}})  # type: ignore[attr-defined]
    _login(ta, "noemail", "noemail-pw")
    proc = ta.popen("sync", str(src), "--dataset", name)
    try:
        wait_for(lambda: "registration refused" in ta.log_text, 60, "the refusal in the log file")
        stored = wait_for(lambda: next(ta.storage_dir.rglob("first.dat"), None), 60, "the first upload").parent
        (src / "second.dat").write_bytes(b"second, written after the refusal\n")
        wait_for(lambda: (stored / "second.dat").is_file(), 60, "an upload after the refusal")
        assert proc.poll() is None, "sync stopped after the refusal"
        status = ta.run("status", check=True).stdout
        assert "contact email" in status, status
        ta.write_config({"catalogue": {**ta.scicat, "contact_email": "beamline@example.org"},  # type: ignore[attr-defined]
                         "sync": {"quiet_seconds": 0.3}})
        reader = real_scicat.reader()
        folder = "/" + stored.relative_to(ta.storage_dir).as_posix()
        wait_for(lambda: reader.datasets_in(folder) and len(reader.files(reader.datasets_in(folder)[0]["pid"])) == 2,
                 90, "registration catching up after the fix")
        d = reader.datasets_in(folder)[0]
        assert d["contactEmail"] == "beamline@example.org" and d["numberOfFiles"] == 2
    finally:
        stop_process(proc, 30)
    assert proc.returncode in (0, 130), proc.stderr.read() if proc.stderr else ""


def test_agent_goes_on_through_a_refusal_notifies_and_catches_up(scicat_ta: Trayagent, real_scicat: RealScicat,
                                                                 tmp_path: Path) -> None:
    """The agent: a refused registration leaves the upload going, says so in a notification and in
    the status Activity shows, and registers by itself once the configuration names a contact email."""
    import requests

    ta, name = scicat_ta, unique("agent")
    src = tmp_path / name
    local = _source(src)
    ta.write_config({"catalogue": ta.scicat})  # type: ignore[attr-defined]
    _login(ta, "noemail", "noemail-pw")
    proc = ta.popen("agent", "--headless")
    try:
        info = wait_for(lambda: (ta.home / "run" / "agent.json").is_file() and
                        json.loads((ta.home / "run" / "agent.json").read_text()), 30, "the agent's API")
        base, token = f"http://127.0.0.1:{info['port']}", (ta.home / "run" / "agent.token").read_text().strip()

        def api(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            resp = requests.request(method, base + path, json=body, timeout=30,
                                    headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200, resp.text
            return resp.json()

        api("POST", "/api/upload", {"paths": [str(src)], "dataset": name})
        waiting = wait_for(lambda: "contact email" in (api("GET", "/api/status")["agent"]["waiting"] or "")
                           and api("GET", "/api/status")["agent"]["waiting"], 60, "the refusal in the status")
        assert "contact_email" in waiting
        wait_for(lambda: "notification: Registration waits" in ta.log_text, 30, "the notification")
        wait_for(lambda: sum(1 for p in ta.storage_dir.rglob("*") if p.is_file()) == len(local), 60,
                 "every file uploaded while registration waits")
        assert proc.poll() is None
        ta.write_config({"catalogue": {**ta.scicat, "contact_email": "beamline@example.org"}})  # type: ignore[attr-defined]
        entry = wait_for(lambda: next((d for d in api("GET", "/api/status")["activity"]
                                       if d["name"] == name and d["state"] == "complete"), None),
                         120, "registration catching up after the fix")
        folder = "/" + entry["storage_path"]
        found = real_scicat.reader().datasets_in(folder)
        assert len(found) == 1 and found[0]["contactEmail"] == "beamline@example.org"
        assert found[0]["numberOfFiles"] == len(local) and not api("GET", "/api/status")["agent"]["waiting"]
    finally:
        stop_process(proc, 30)
