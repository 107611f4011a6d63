"""Batch upload to a real S3 server (SeaweedFS) through the real rclone: MD5 hash verification."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from agentctl import Trayagent
from datagen import ODD_NAMES, make_many, make_tree, md5
from servers import S3Server, run_rclone
from waiting import wait_until


def s3_files(server: S3Server, bucket: str, path: str) -> dict[str, dict[str, object]]:
    """What the bucket holds under ``path``, listed by plain rclone: relpath -> {size, md5}."""
    out = run_rclone(["lsjson", "-R", "--files-only", "--hash", "--hash-type", "md5", f"S3:{bucket}/{path}"],
                     env=server.rclone_env("S3")).stdout
    return {e["Path"]: {"size": e["Size"], "md5": e.get("Hashes", {}).get("md5")} for e in json.loads(out)}


def test_odd_names_hash_verified(ta: Trayagent, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    content = make_tree(tmp_path / "run")
    ta.use_s3(s3_server, s3_bucket)
    rc, out = ta.upload_json(str(tmp_path / "run"), "--dataset", "run7", "--proposal", "20260123")
    assert rc == 0, out
    assert out["files_ok"] == len(ODD_NAMES)
    stored = s3_files(s3_server, s3_bucket, "20260123/run7")
    stored.pop("ro-crate-metadata.json")
    expected = {name.replace("\n", "\u240a"): {"size": len(d), "md5": md5(d)} for name, d in content.items()}
    assert stored == expected
    files = ta.catalogue_files("run7")
    assert {p: (r["checksum"], r["algorithm"], r["verification"]) for p, r in files.items()} == {
        p: (md5(d), "md5", "hash") for p, d in content.items()}
    assert "storage backend s3: 8 parallel transfers" in ta.log_text  # transfers = "auto" on an object store


def test_small_files_are_read_back_by_listing_not_one_head_each(ta: Trayagent, s3_server: S3Server,
                                                                s3_bucket: str, tmp_path: Path) -> None:
    """rclone's HEAD after each PUT is left out for small files (``storage.target.SMALL_FILES``): the
    engine's listing verifies them. SeaweedFS's own request counters (it counts a HEAD as a GET) show
    fewer reads than files, where rclone's default would make at least one per file; every file is still
    hash-verified from what storage holds."""
    content = make_many(tmp_path / "run", 80, size=2048, per_dir=40)
    ta.use_s3(s3_server, s3_bucket)
    before = s3_server.request_counts()
    rc, out = ta.upload_json(str(tmp_path / "run"), "--dataset", "nohead")
    after = s3_server.request_counts()
    assert rc == 0 and out["files_ok"] == 80, out
    sent = {action: after.get(action, 0) - before.get(action, 0) for action in after}
    assert sent.get("PUT", 0) >= 80, sent
    assert sent.get("GET", 0) < 80 // 4, sent  # a HEAD per file would be 80 or more
    assert sent.get("LIST", 0) >= 1, sent
    files = ta.catalogue_files("nohead")
    assert {p: (r["checksum"], r["verification"]) for p, r in files.items()} == {
        p: (md5(d), "hash") for p, d in content.items()}


def test_200_mb_file(ta: Trayagent, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    digest = hashlib.md5()
    with open(src / "volume.raw", "wb") as fh:
        for _ in range(200):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            fh.write(chunk)
    ta.use_s3(s3_server, s3_bucket, transfer={"transfers": 2})
    rc, out = ta.upload_json(str(src), "--dataset", "big", timeout=600)
    assert "storage backend s3: 2 parallel transfers" in ta.log_text  # a number set is used as it is
    assert rc == 0 and out["bytes"] == 200 << 20, out
    stored = s3_files(s3_server, s3_bucket, "no-proposal/big")
    assert stored["volume.raw"] == {"size": 200 << 20, "md5": digest.hexdigest()}
    row = ta.catalogue_files("big")["volume.raw"]
    assert (row["checksum"], row["verification"]) == (digest.hexdigest(), "hash")


def test_wrong_secret_is_exit_2(ta: Trayagent, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat"])
    ta.use_s3(s3_server, s3_bucket)
    ta.run("login", "storage", "--password-stdin", input="wrong-secret\n", check=True)
    proc = ta.run("upload", str(tmp_path / "d"), "--dataset", "w")
    assert proc.returncode == 2, proc.stderr
    assert "refused the credentials" in proc.stderr
    assert not ta.catalogue_datasets() if (ta.home / "data" / "catalogue.sqlite").exists() else True


def test_server_killed_mid_upload_and_agent_killed_then_rerun(ta: Trayagent, s3_server: S3Server,
                                                              s3_bucket: str, tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", 24, size=200_000, per_dir=8)
    ta.use_s3(s3_server, s3_bucket, transfer={"bwlimit": "1M", "batch_files": 4})
    args = ("upload", str(tmp_path / "d"), "--dataset", "crash", "--proposal", "p")
    proc = ta.popen(*args)
    wait_until(lambda: ta.files_sent() >= 4, 60, what="first files registered")
    s3_server.kill()
    wait_until(lambda: "retry in" in ta.log_text or "unreachable" in ta.log_text, 120, what="outage noticed")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    s3_server.start()
    rc, out = ta.upload_json(*args[1:], timeout=300)
    assert rc == 0 and out["files_ok"] == 24, out
    stored = s3_files(s3_server, s3_bucket, "p/crash")
    stored.pop("ro-crate-metadata.json")
    assert stored == {p: {"size": len(d), "md5": md5(d)} for p, d in content.items()}
    assert len(ta.catalogue_datasets()) == 1
    assert len(ta.catalogue_files("crash")) == 24
