"""Batch upload into the embedded default (local folder storage + local catalogue), via the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from agentctl import Trayagent
from datagen import ODD_NAMES, make_tree, md5, tree_of


def test_upload_odd_names_nested_and_empty(ta: Trayagent, tmp_path: Path) -> None:
    content = make_tree(tmp_path / "run42")
    rc, out = ta.upload_json(str(tmp_path / "run42"), "--dataset", "run42", "--proposal", "20260123",
                             "--description", "tomography, 20 keV")
    assert rc == 0, out
    assert out["files_ok"] == len(ODD_NAMES) and out["files_failed"] == 0
    assert out["bytes"] == sum(len(v) for v in content.values())
    stored = ta.storage_dir / "20260123" / "run42"
    assert tree_of(stored) == content
    registered = ta.catalogue_files("run42")
    assert set(registered) == set(content)
    for path, row in registered.items():
        assert row["size"] == len(content[path])
        assert row["algorithm"] == "md5" and row["verification"] == "hash"
        assert row["checksum"] == md5(content[path])
    [dataset] = ta.catalogue_datasets()
    assert dataset["description"] == "tomography, 20 keV" and dataset["proposal"] == "20260123"
    assert dataset["finished"]


def test_manifest_written_next_to_the_data(ta: Trayagent, tmp_path: Path) -> None:
    content = make_tree(tmp_path / "d", ["a.txt", "sub/b.txt"])
    assert ta.run("upload", str(tmp_path / "d"), "--dataset", "m1").returncode == 0
    doc = json.loads((ta.storage_dir / "no-proposal" / "m1" / "ro-crate-metadata.json").read_text())
    ids = {e["@id"] for e in doc["@graph"]}
    assert {"./", "ro-crate-metadata.json", *content} <= ids


def test_rerun_adds_to_the_same_dataset_and_sends_only_what_changed(ta: Trayagent, tmp_path: Path) -> None:
    src = tmp_path / "run"
    make_tree(src, ["a.dat", "b.dat"])
    assert ta.run("upload", str(src), "--dataset", "r", "--proposal", "p").returncode == 0
    (src / "c.dat").write_bytes(b"new file")
    (src / "a.dat").write_bytes(b"changed content")
    rc, out = ta.upload_json(str(src), "--dataset", "r", "--proposal", "p")
    assert rc == 0
    assert len(ta.catalogue_datasets()) == 1
    files = ta.catalogue_files("r")
    assert set(files) == {"a.dat", "b.dat", "c.dat"}
    assert files["a.dat"]["size"] == len(b"changed content")
    assert (ta.storage_dir / "p" / "r" / "a.dat").read_bytes() == b"changed content"
    assert "a.dat: Copied" in ta.log_text and ta.log_text.count("b.dat: Copied") == 1


def test_include_exclude(ta: Trayagent, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["keep.h5", "skip.tmp", "raw/keep2.h5", "raw/notes.txt", "cache/x.h5"])
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "f", "--include", "*.h5",
                             "--exclude", "cache")
    assert rc == 0
    assert set(ta.catalogue_files("f")) == {"keep.h5", "raw/keep2.h5"}


def test_dry_run_changes_nothing(ta: Trayagent, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat", "sub/b.dat"])
    proc = ta.run("upload", str(tmp_path / "d"), "--dataset", "dry", "--proposal", "p", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert sorted(f["remote"].rsplit("/dry/", 1)[1] for f in plan["files"]) == ["a.dat", "sub/b.dat"]
    assert not ta.storage_dir.exists() or not any(ta.storage_dir.rglob("*.dat"))
    assert not (ta.home / "data" / "catalogue.sqlite").exists() or not ta.catalogue_datasets()


def test_dataset_name_cannot_escape_the_storage_root(ta: Trayagent, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat"])
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "../../../escaped", "--proposal", "../..")
    assert rc == 0
    stored = list(ta.storage_dir.rglob("a.dat"))
    assert len(stored) == 1
    assert ta.storage_dir.resolve() in stored[0].resolve().parents
    assert ".." not in out["storage_path"].split("/")
    assert not (ta.home / "escaped").exists() and not (ta.home.parent / "escaped").exists()


def test_unreadable_file_fails_alone_and_is_reported(ta: Trayagent, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["good.dat", "also_good.dat"])
    bad = tmp_path / "d" / "dangling.dat"
    bad.symlink_to(tmp_path / "nowhere")  # listed by the folder, unreadable when opened
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "u")
    assert rc == 1
    assert out["files_ok"] == 2 and out["files_failed"] == 1
    assert "dangling.dat" in out["failures"][0]["path"]
    assert set(ta.catalogue_files("u")) == {"good.dat", "also_good.dat"}


def test_bad_config_is_a_clear_usage_error(ta: Trayagent, tmp_path: Path) -> None:
    ta.write_config({"transfer": {"transfers": "four", "colour": "blue"}})
    proc = ta.run("upload", str(tmp_path), "--dataset", "x")
    assert proc.returncode == 2
    assert "config.toml" in proc.stderr and "[transfer] transfers" in proc.stderr
    assert "colour" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_path_is_a_usage_error(ta: Trayagent, tmp_path: Path) -> None:
    proc = ta.run("upload", str(tmp_path / "nope"), "--dataset", "x")
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr


def test_status_lists_datasets(ta: Trayagent, tmp_path: Path) -> None:
    make_tree(tmp_path / "d", ["a.dat"])
    ta.run("upload", str(tmp_path / "d"), "--dataset", "s1", check=True)
    status = json.loads(ta.run("status", "--json", check=True).stdout)
    [d] = status["datasets"]
    assert d["name"] == "s1" and d["state"] == "complete" and d["files"]["registered"] == 1


def test_upload_ends_without_a_checkpoint_and_the_next_command_reads_its_wal(ta: Trayagent,
                                                                              tmp_path: Path) -> None:
    """`trayagent upload` skips SQLite's close-time checkpoint (its fsync waits for the disk to
    take whatever else was just written): the commits are in the WAL, and the next run reads them."""
    make_tree(tmp_path / "d", ["a.dat", "b.dat"])
    ta.run("upload", str(tmp_path / "d"), "--dataset", "w1", check=True)
    for name in ("queue.sqlite-wal", "catalogue.sqlite-wal"):
        wal = ta.home / "data" / name
        assert wal.exists() and wal.stat().st_size > 0, name
    [d] = json.loads(ta.run("status", "--json", check=True).stdout)["datasets"]
    assert d["state"] == "complete" and d["files"]["registered"] == 2
    assert set(ta.catalogue_files("w1")) == {"a.dat", "b.dat"}
    rc, out = ta.upload_json(str(tmp_path / "d"), "--dataset", "w1")  # the same upload again: nothing to send
    assert rc == 0 and out["files_failed"] == 0
    assert len(ta.catalogue_datasets()) == 1 and ta.log_text.count("a.dat: Copied") == 1


def test_rclone_killed_mid_upload_is_restarted(ta: Trayagent, tmp_path: Path) -> None:
    import os
    import signal

    from datagen import make_many
    from waiting import wait_until

    content = make_many(tmp_path / "d", 20, size=200_000, per_dir=5)
    ta.write_config({"transfer": {"bwlimit": "1M", "batch_files": 4}})
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "rc", "--json")
    pidfile = ta.home / "run" / f"rclone-rcd-{proc.pid}.pid"
    wait_until(lambda: ta.files_sent() >= 4 and pidfile.exists(), 60, what="mid-upload")
    first = int(pidfile.read_text())
    os.kill(first, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == 20
    assert "rclone rcd died" in ta.log_text
    assert tree_of(ta.storage_dir / "no-proposal" / "rc") == content
