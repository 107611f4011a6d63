"""Batch upload to a real WebDAV server (wsgidav, basic auth) through the real rclone."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from agentctl import Trayagent
from datagen import ODD_NAMES, blake3, make_many, make_tree, tree_of
from servers import WebDAVServer
from waiting import wait_until

SLOW = {"transfer": {"bwlimit": "1M", "batch_files": 5}}


def stored(server: WebDAVServer, path: str) -> dict[str, bytes]:
    """The server's files, named as in the source: rclone stores control characters in names as
    their Unicode pictures on WebDAV (newline -> U+240A), which we map back."""
    return {name.replace("\u240a", "\n"): data for name, data in tree_of(Path(server.root) / path).items()}


def test_odd_names_land_byte_identical_and_size_verified(ta: Trayagent, webdav_server: WebDAVServer,
                                                         tmp_path: Path) -> None:
    content = make_tree(tmp_path / "run42")
    ta.use_webdav(webdav_server)
    rc, out = ta.upload_json(str(tmp_path / "run42"), "--dataset", "run42", "--proposal", "20260123")
    assert rc == 0, out
    assert out["files_ok"] == len(ODD_NAMES)
    assert stored(webdav_server, "20260123/run42") == content
    files = ta.catalogue_files("run42")
    assert {p: r["checksum"] for p, r in files.items()} == {p: blake3(d) for p, d in content.items()}
    assert {r["verification"] for r in files.values()} == {"size"}  # plain WebDAV reports no hash
    assert (Path(webdav_server.root) / "20260123/run42/ro-crate-metadata.json").exists()
    assert "storage backend webdav: 4 parallel transfers" in ta.log_text  # transfers = "auto" on WebDAV


def test_password_never_in_config_or_log(ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat"])
    ta.use_webdav(webdav_server)
    assert ta.run("upload", str(tmp_path / "d"), "--dataset", "s", "-v").returncode == 0
    config = (ta.home / "config" / "config.toml").read_text()
    assert webdav_server.password not in config
    assert webdav_server.password not in ta.log_text
    assert "rclone rcd" in ta.log_text  # the log is real and was written


def test_wrong_password_is_exit_2_and_registers_nothing(ta: Trayagent, webdav_server: WebDAVServer,
                                                        tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat", "b.dat"])
    ta.use_webdav(webdav_server)
    ta.run("login", "storage", "--password-stdin", input="not-the-password\n", check=True)
    proc = ta.run("upload", str(tmp_path / "d"), "--dataset", "w", "--json")
    assert proc.returncode == 2
    assert "refused the credentials" in proc.stderr and "trayagent login storage" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert 'rc: "' not in proc.stderr  # rclone's echo of the failed call stays in the log file
    assert 'rc: "operations/mkdir": error: ' in ta.log_text
    assert not (ta.home / "data" / "catalogue.sqlite").exists() or not ta.catalogue_files("w")
    assert not (Path(webdav_server.root) / "no-proposal" / "w").exists()
    # with the right password, the same command finishes the job
    ta.run("login", "storage", "--password-stdin", input=webdav_server.password + "\n", check=True)
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "w")
    assert rc == 0 and out["files_ok"] == 2


def test_missing_storage_login_is_exit_2(ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    ta.write_config({"storage": {"remote": f":webdav,url='{webdav_server.url}',vendor=other:", "user": "bob"}})
    proc = ta.run("upload", str(tmp_path), "--dataset", "x")
    assert proc.returncode == 2 and "trayagent login storage --user bob" in proc.stderr


def test_2000_small_files(ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    content = make_many(tmp_path / "many", 2000, size=512)
    ta.use_webdav(webdav_server)
    rc, out = ta.upload_json(str(tmp_path / "many"), "--dataset", "many", timeout=600)
    assert rc == 0 and out["files_ok"] == 2000, out
    assert stored(webdav_server, "no-proposal/many") == content
    assert len(ta.catalogue_files("many")) == 2000


def test_server_stopped_mid_upload_finishes_by_itself(ta: Trayagent, webdav_server: WebDAVServer,
                                                      tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 30, size=150_000, per_dir=10)
    ta.use_webdav(webdav_server, **SLOW)
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "outage", "--json")
    wait_until(lambda: ta.files_sent() >= 5, 60, what="first files registered")
    webdav_server.kill()  # a crash: connections drop at once
    wait_until(lambda: "retry in" in ta.log_text, 120, what="the engine to notice the outage")
    webdav_server.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == 30
    assert stored(webdav_server, "no-proposal/outage") == content
    assert len(ta.catalogue_files("outage")) == 30


def test_storage_down_at_start_waits_and_finishes(ta: Trayagent, webdav_server: WebDAVServer,
                                                  tmp_path: Path) -> None:
    content = make_tree(tmp_path / "d", ["a.dat", "b/c.dat"])
    ta.use_webdav(webdav_server)
    webdav_server.stop()
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "late", "--json")
    wait_until(lambda: "storage unreachable" in ta.log_text, 60, what="the engine to report the outage")
    assert proc.poll() is None  # still waiting, not failed
    webdav_server.start()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == 2
    assert stored(webdav_server, "no-proposal/late") == content


def test_kill_9_mid_upload_then_rerun(ta: Trayagent, webdav_server: WebDAVServer, tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 30, size=150_000, per_dir=10)
    ta.use_webdav(webdav_server, **SLOW)
    args = ("upload", str(tmp_path / "d"), "--dataset", "killed", "--proposal", "p")
    proc = ta.popen(*args)
    wait_until(lambda: 5 <= ta.files_sent() < 30, 60, what="mid-upload")
    rcd = int((ta.home / "run" / f"rclone-rcd-{proc.pid}.pid").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    # its rclone dies with it: no orphan keeps uploading (the idle case: test_rclone_daemon)
    wait_until(lambda: not Path(f"/proc/{rcd}").exists() or b"rclone" not in Path(f"/proc/{rcd}/cmdline")
               .read_bytes(), 10, what="the killed upload's rclone to end")
    states = ta.queue_states()
    assert states.get("registered", 0) < 30, states
    rc, out = ta.upload_json(*args[1:], timeout=300)
    assert rc == 0 and out["files_ok"] == 30
    assert stored(webdav_server, "p/killed") == content
    files = ta.catalogue_files("killed")
    assert {p: r["checksum"] for p, r in files.items()} == {p: blake3(d) for p, d in content.items()}
    assert len(ta.catalogue_datasets()) == 1
    manifest = json.loads((Path(webdav_server.root) / "p/killed/ro-crate-metadata.json").read_text())
    assert set(content) <= {e["@id"] for e in manifest["@graph"]}


def test_file_rewritten_during_upload_is_never_registered_stale(ta: Trayagent, webdav_server: WebDAVServer,
                                                                tmp_path: Path) -> None:
    src = tmp_path / "d"
    src.mkdir()
    first, second = b"A" * 3_000_000, b"B" * 3_000_000
    (src / "frame.raw").write_bytes(first)
    ta.use_webdav(webdav_server, transfer={"bwlimit": "1M"})
    proc = ta.popen("upload", str(src), "--dataset", "rw", "--json")
    wait_until(lambda: "frame.raw" in ta.log_text or ta.queue_states().get("uploading"), 30,
               what="the upload to start")
    wait_until(lambda: (Path(webdav_server.root) / "no-proposal/rw/frame.raw").exists(), 30, interval=0.05,
               what="bytes arriving in storage")
    (src / "frame.raw").write_bytes(second)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (Path(webdav_server.root) / "no-proposal/rw/frame.raw").read_bytes() == second
    assert ta.catalogue_files("rw")["frame.raw"]["checksum"] == blake3(second)
