"""Prove the test servers are real: data really moves through rclone, auth is really enforced."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
from servers import S3Server, SessionKeyring, WebDAVServer, run_rclone


def _make_tree(root: Path) -> Path:
    """Small folder with text, binary, empty and nested files (covers the usual upload shapes)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("hello äöü\n")
    (root / "empty.dat").write_bytes(b"")
    (root / "sub" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "deeper" / "c.json").write_text('{"k": 1}')
    return root


def _assert_same_tree(left: Path, right: Path) -> None:
    """Byte-identical comparison of two directory trees."""
    cmp = filecmp.dircmp(left, right)
    assert not cmp.left_only and not cmp.right_only, (cmp.left_only, cmp.right_only)
    _, mismatch, errors = filecmp.cmpfiles(left, right, cmp.common_files, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    for sub in cmp.common_dirs:
        _assert_same_tree(left / sub, right / sub)


def _round_trip(tmp_path: Path, remote: str, env: dict[str, str]) -> None:
    src = _make_tree(tmp_path / "src")
    run_rclone(["copy", str(src), remote], env=env)
    back = tmp_path / "back"
    run_rclone(["copy", remote, str(back)], env=env)
    _assert_same_tree(src, back)


def _webdav_status(server: WebDAVServer, password: str) -> int:
    token = b64encode(f"{server.user}:{password}".encode()).decode()
    req = urllib.request.Request(server.url, method="PROPFIND", headers={"Authorization": f"Basic {token}",
                                                                          "Depth": "1"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# --- WebDAV ----------------------------------------------------------------------------------------

def test_webdav_rclone_round_trip(webdav_server: WebDAVServer, tmp_path: Path) -> None:
    _round_trip(tmp_path, "DAV:upload/run1", webdav_server.rclone_env("DAV"))
    assert (webdav_server.root / "upload" / "run1" / "sub" / "blob.bin").stat().st_size == 300_000


def test_webdav_rejects_wrong_password(webdav_server: WebDAVServer, tmp_path: Path) -> None:
    assert _webdav_status(webdav_server, webdav_server.password) == 207
    assert _webdav_status(webdav_server, "wrong-" + webdav_server.password) == 401
    env = {**webdav_server.rclone_env("DAV"), "RCLONE_CONFIG_DAV_PASS": "definitelywrong"}
    (tmp_path / "f.txt").write_text("x")
    result = run_rclone(["copy", str(tmp_path / "f.txt"), "DAV:x"], env=env, check=False)
    assert result.returncode != 0
    assert not (webdav_server.root / "x").exists()


def test_webdav_restart_keeps_port_and_data(webdav_server: WebDAVServer, tmp_path: Path) -> None:
    env = webdav_server.rclone_env("DAV")
    (tmp_path / "keep.txt").write_text("survives restarts")
    run_rclone(["copy", str(tmp_path / "keep.txt"), "DAV:d"], env=env)
    url, old_pid = webdav_server.url, webdav_server.pid

    webdav_server.stop()
    assert not webdav_server.running
    assert run_rclone(["lsf", "DAV:d"], env=env, check=False).returncode != 0  # really down
    webdav_server.start()
    assert (webdav_server.url, webdav_server.running) == (url, True) and webdav_server.pid != old_pid
    assert run_rclone(["cat", "DAV:d/keep.txt"], env=env).stdout == "survives restarts"

    webdav_server.kill()
    webdav_server.restart()
    assert run_rclone(["cat", "DAV:d/keep.txt"], env=env).stdout == "survives restarts"


# --- S3 --------------------------------------------------------------------------------------------

def test_s3_rclone_round_trip(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    _round_trip(tmp_path, f"S3:{s3_bucket}/upload/run1", s3_server.rclone_env("S3"))
    listing = run_rclone(["lsf", "-R", f"S3:{s3_bucket}"], env=s3_server.rclone_env("S3")).stdout
    assert "upload/run1/sub/blob.bin" in listing.splitlines()


def test_s3_rejects_wrong_secret(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    good = s3_server.rclone_env("S3")
    assert run_rclone(["lsf", f"S3:{s3_bucket}"], env=good).returncode == 0
    for key, bad in (("SECRET_ACCESS_KEY", "wrong-secret"), ("ACCESS_KEY_ID", "AKNOBODY")):
        env = {**good, f"RCLONE_CONFIG_S3_{key}": bad}
        listed = run_rclone(["lsf", f"S3:{s3_bucket}"], env=env, check=False)
        assert listed.returncode != 0 and ("403" in listed.stderr or "AccessDenied" in listed.stderr
                                           or "InvalidAccessKeyId" in listed.stderr), listed.stderr
        (tmp_path / "f.txt").write_text("x")
        copied = run_rclone(["copy", str(tmp_path / "f.txt"), f"S3:{s3_bucket}/bad"], env=env, check=False)
        assert copied.returncode != 0
    assert run_rclone(["lsf", "-R", f"S3:{s3_bucket}"], env=good).stdout == ""
    # unsigned HTTP is refused too
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{s3_server.endpoint}/{s3_bucket}", timeout=10)
    assert exc.value.code == 403


def test_s3_restart_keeps_data(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    env = s3_server.rclone_env("S3")
    (tmp_path / "keep.txt").write_text("persisted")
    run_rclone(["copy", str(tmp_path / "keep.txt"), f"S3:{s3_bucket}/d"], env=env)
    endpoint = s3_server.endpoint
    s3_server.kill()
    s3_server.restart()
    assert s3_server.endpoint == endpoint
    assert run_rclone(["cat", f"S3:{s3_bucket}/d/keep.txt"], env=env).stdout == "persisted"


# --- keyring ---------------------------------------------------------------------------------------

_KEYRING_SNIPPET = """
import sys, keyring
print(type(keyring.get_keyring()).__module__ + "." + type(keyring.get_keyring()).__name__)
if sys.argv[1] == "set":
    keyring.set_password("trayagent-test", "alice", sys.stdin.read())
else:
    print(keyring.get_password("trayagent-test", "alice"))
"""


def test_keyring_round_trip_through_secret_service(keyring_session: SessionKeyring) -> None:
    import keyring
    from keyring.backends import SecretService

    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == keyring_session.address
    assert isinstance(keyring.get_keyring(), SecretService.Keyring)
    keyring.set_password("trayagent-test", "bob", "in-process")
    assert keyring.get_password("trayagent-test", "bob") == "in-process"

    # fresh interpreters inherit the env and talk to the same daemon over D-Bus
    run = [sys.executable, "-c", _KEYRING_SNIPPET]
    stored = subprocess.run([*run, "set"], input="s3cr3t-ü", capture_output=True, text=True, check=True)
    assert stored.stdout.strip() == "keyring.backends.SecretService.Keyring"
    read = subprocess.run([*run, "get"], capture_output=True, text=True, check=True)
    assert read.stdout.splitlines()[-1] == "s3cr3t-ü"
    assert keyring.get_password("trayagent-test", "alice") == "s3cr3t-ü"
    keyring.delete_password("trayagent-test", "alice")
    assert keyring.get_password("trayagent-test", "alice") is None


def test_keyring_is_private(keyring_session: SessionKeyring) -> None:
    """The keyring files live in the session's temp dir, not in the user's ~/.local/share/keyrings."""
    import keyring

    keyring.set_password("trayagent-test", "carol", "x")
    assert list((keyring_session.base / "gnome-keyring" / "data" / "keyrings").glob("*.keyring"))


def test_ta_home(ta_home: Path) -> None:
    assert os.environ["TRAYAGENT_HOME"] == str(ta_home) and ta_home.is_dir()
