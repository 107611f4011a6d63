"""Unit tests for the SQLite catalogue: idempotence, upserts, counts and the errors users see."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trayagent.catalogue import DatasetSpec, FileRecord, LocalCatalogue, StorageLocation
from trayagent.errors import CatalogueError

LOCATION = StorageLocation(url="file:///srv/storage", host="localhost", path="20260123/run42")


def _file(path: str, size: int = 10, checksum: str = "aa", mtime: float = 1_700_000_000.0) -> FileRecord:
    return FileRecord(path, size, mtime, checksum, algorithm="md5", verification="hash")


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "catalogue.sqlite"


@pytest.fixture()
def cat(db: Path) -> Iterator[LocalCatalogue]:
    catalogue = LocalCatalogue(db)
    yield catalogue
    catalogue.close()


def test_kind_and_pragmas(cat: LocalCatalogue) -> None:
    assert cat.kind == "local"
    assert cat._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert cat._conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_ensure_dataset_is_idempotent_across_instances(db: Path) -> None:
    spec = DatasetSpec(name="run42", proposal="p123", keywords=("xrd",), metadata={"energy": 12.4})
    with LocalCatalogue(db) as first:
        dataset_id = first.ensure_dataset(spec, LOCATION)
        assert dataset_id.startswith("local/")
        assert first.ensure_dataset(spec, LOCATION) == dataset_id
    with LocalCatalogue(db) as second:
        assert second.ensure_dataset(spec, LOCATION) == dataset_id
        assert len(second.find_datasets()) == 1
        other = second.ensure_dataset(spec, StorageLocation(LOCATION.url, LOCATION.host, "20260123/run43"))
        assert other != dataset_id
        assert len(second.find_datasets("run42")) == 2


def test_ensure_dataset_takes_the_latest_user_values_and_fills_empty_fields(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42", description="first", owner="ann"), LOCATION)
    again = DatasetSpec(name="renamed", description="second", proposal="p1", keywords=("a", "b"), owner="bob")
    assert cat.ensure_dataset(again, LOCATION) == dataset_id
    info = cat.dataset_info(dataset_id)
    assert info["name"] == "run42" and info["owner"] == "ann"  # who and where: only filled when empty
    assert info["description"] == "second"  # the user's latest
    assert info["proposal"] == "p1"
    assert info["keywords"] == ["a", "b"]
    assert info["metadata"] == {}
    assert info["source_folders"] == []
    assert info["storage_url"] == LOCATION.url and info["storage_path"] == LOCATION.path
    assert info["created"].endswith("Z") and info["finished"] is None


def test_update_dataset_replaces_the_user_entries_keeps_the_harvested_and_what_is_not_given(
        cat: LocalCatalogue) -> None:
    first = DatasetSpec(name="run42", description="Si", investigation_description="wafers", keywords=("a",),
                        metadata={"sample": {"value": "Si", "unit": ""}, "T": {"value": 300, "unit": "K"}})
    dataset_id = cat.ensure_dataset(first, LOCATION)
    cat.set_harvested(dataset_id, {"energy": {"value": 12, "unit": "keV"}})
    cat.update_dataset(dataset_id, DatasetSpec(name="run42", keywords=("b", "c"),
                                               metadata={"sample": {"value": "Ge", "unit": ""}}))
    info = cat.dataset_info(dataset_id)
    assert info["keywords"] == ["b", "c"] and (info["description"], info["investigation_description"]) == (
        "Si", "wafers"), "not given again: kept"
    assert info["metadata"] == {"sample": {"value": "Ge", "unit": ""},
                                "harvested": {"energy": {"value": 12, "unit": "keV"}}}
    cat.update_dataset(dataset_id, DatasetSpec(name="run42"))  # a re-run that says nothing: all kept
    assert cat.dataset_info(dataset_id) == info


def test_register_upserts_modified_files_and_counts(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)
    cat.register_files(dataset_id, [_file("b.h5", 10), _file("a.h5", 20)])
    cat.register_files(dataset_id, [_file("b.h5", 15, checksum="bb", mtime=2.0), _file("c/d.h5", 5)])
    cat.register_files(dataset_id, [])
    files = cat.list_files(dataset_id)
    assert [f.path for f in files] == ["a.h5", "b.h5", "c/d.h5"]
    assert files[1] == FileRecord("b.h5", 15, 2.0, "bb", "md5", "hash")
    info = cat.dataset_info(dataset_id)
    assert (info["number_of_files"], info["size"]) == (3, 40)


def test_duplicate_paths_in_one_batch(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)
    cat.register_files(dataset_id, [_file("x", 1), _file("x", 7)])
    info = cat.dataset_info(dataset_id)
    assert (info["number_of_files"], info["size"]) == (1, 7)


def test_finish_dataset(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)
    cat.finish_dataset(dataset_id)
    assert cat.dataset_info(dataset_id)["finished"].endswith("Z")


@pytest.mark.parametrize("call", ["register_files", "finish_dataset", "dataset_info", "list_files"])
def test_unknown_dataset_is_a_clear_error(cat: LocalCatalogue, call: str) -> None:
    args = ("local/nope", [_file("a")]) if call == "register_files" else ("local/nope",)
    with pytest.raises(CatalogueError, match="local/nope"):
        getattr(cat, call)(*args)


def test_failed_batch_leaves_nothing_behind(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)
    bad = FileRecord("z", 1, 1.0, None, "md5", "hash")  # type: ignore[arg-type]  # NOT NULL violation
    with pytest.raises(CatalogueError):
        cat.register_files(dataset_id, [_file("a"), bad])
    assert cat.list_files(dataset_id) == []
    assert cat.dataset_info(dataset_id)["number_of_files"] == 0


def test_corrupt_database_file(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not sqlite at all\x00" * 200)
    with pytest.raises(CatalogueError) as info:
        LocalCatalogue(db)
    text = str(info.value)
    assert str(db) in text and "aside" in text
    assert not info.value.transient


def test_locked_database_is_transient(db: Path, cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)
    cat._conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CatalogueError) as info:
            cat.register_files(dataset_id, [_file("a")])
        assert info.value.transient
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_threads_share_one_catalogue(cat: LocalCatalogue) -> None:
    dataset_id = cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)

    def work(n: int) -> None:
        for i in range(20):
            cat.register_files(dataset_id, [_file(f"t{n}/f{i}", 1)])
            cat.ensure_dataset(DatasetSpec(name="run42"), LOCATION)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cat.dataset_info(dataset_id)["number_of_files"] == 80
    assert len(cat.find_datasets()) == 1
