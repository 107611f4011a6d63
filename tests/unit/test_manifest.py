"""Unit tests for the RO-Crate manifest: structure, path encoding, checksums and scale."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from trayagent.catalogue.base import FileRecord
from trayagent.pipeline.manifest import RO_CRATE_CONTEXT, build_ro_crate, stream_ro_crate, write_ro_crate
from trayagent.pipeline.spool import Spool

DATASET: dict[str, Any] = {
    "id": "local/1234",
    "name": "run42",
    "description": "Powder diffraction",
    "proposal": "p123",
    "investigation_description": "Battery materials",
    "keywords": ["xrd", "battery"],
    "created": "2026-01-23T10:00:00.000Z",
    "finished": "2026-01-23T11:00:00.000Z",
}
ODD_NAMES = ["a b#c%.h5", "ünï.dat", "line\nbreak.txt", "dir/sub dir/x?y:z.h5"]


MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"


def _record(path: str, algorithm: str = "md5", checksum: str = MD5_EMPTY) -> FileRecord:
    return FileRecord(path, 123, 1_700_000_000.5, checksum, algorithm, "hash")


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entity["@id"]: entity for entity in doc["@graph"]}


def test_structure() -> None:
    doc = build_ro_crate(DATASET, [_record("a.h5"), _record("b/c.h5")], "trayagent 0.1.0")
    assert doc["@context"][0] == RO_CRATE_CONTEXT == "https://w3id.org/ro/crate/1.1/context"
    entities = _by_id(doc)
    assert len(entities) == len(doc["@graph"])  # flattened, unique ids
    descriptor = entities["ro-crate-metadata.json"]
    assert descriptor["@type"] == "CreativeWork"
    assert descriptor["conformsTo"] == {"@id": "https://w3id.org/ro/crate/1.1"}
    assert descriptor["about"] == {"@id": "./"}
    root = entities["./"]
    assert root["@type"] == "Dataset"
    assert (root["name"], root["description"]) == ("run42", "Powder diffraction")
    assert root["datePublished"] == DATASET["finished"] and root["dateCreated"] == DATASET["created"]
    assert root["keywords"] == "xrd, battery"
    assert [part["@id"] for part in root["hasPart"]] == ["a.h5", "b/c.h5"]
    for part in root["hasPart"]:
        assert entities[part["@id"]]["@type"] == "File"
    project = entities[root["funder"]["@id"]]
    assert project["@type"] == "Project" and project["identifier"] == "p123"
    assert project["description"] == "Battery materials"
    action = next(e for e in doc["@graph"] if e["@type"] == "CreateAction")
    assert action["result"] == {"@id": "./"}
    assert entities[action["instrument"]["@id"]] == {
        "@id": "#generator", "@type": "SoftwareApplication", "name": "trayagent 0.1.0",
    }


def test_file_entity_and_checksums() -> None:
    sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    files = [_record("a.h5"), _record("b.h5"), _record("c.h5", "sha256", sha), _record("d.h5", "md5", "")]
    entities = _by_id(build_ro_crate(DATASET, files, "trayagent"))
    a = entities["a.h5"]
    assert a["contentSize"] == "123"
    assert a["dateModified"].startswith("2023-11-14T22:13:20.5") and a["dateModified"].endswith("Z")
    checksum = entities[a["identifier"]["@id"]]
    assert checksum == {
        "@id": "#md5-d41d8cd98f00b204e9800998ecf8427e", "@type": "PropertyValue",
        "name": "md5 checksum", "propertyID": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e",
    }
    assert entities["b.h5"]["identifier"] == a["identifier"]  # shared, listed once
    assert entities["c.h5"]["sha256"] == sha and "identifier" not in entities["c.h5"]
    assert "identifier" not in entities["d.h5"] and "sha256" not in entities["d.h5"]


def test_odd_names_are_encoded_and_round_trip() -> None:
    doc = build_ro_crate(DATASET, [_record(name) for name in ODD_NAMES], "trayagent")
    ids = [part["@id"] for part in _by_id(doc)["./"]["hasPart"]]
    assert ids == ["a%20b%23c%25.h5", "ünï.dat", "line%0Abreak.txt", "dir/sub%20dir/x%3Fy%3Az.h5"]
    assert [unquote(i) for i in ids] == ODD_NAMES
    for i in ids:
        assert not any(c in i for c in " #\n?")


def test_json_serialisable_and_written(tmp_path: Path) -> None:
    doc = build_ro_crate(DATASET, [_record(name) for name in ODD_NAMES], "trayagent")
    json.dumps(doc)
    target = write_ro_crate(doc, tmp_path)
    assert target == tmp_path / "ro-crate-metadata.json"
    assert json.loads(target.read_text(encoding="utf-8")) == doc
    assert "ünï.dat" in target.read_text(encoding="utf-8")
    assert list(tmp_path.iterdir()) == [target]
    assert write_ro_crate(doc, tmp_path / "x" / "other.json").is_file()


def test_minimal_dataset_and_self_and_duplicates() -> None:
    latest = FileRecord("a", 5, 1.0, "ff", "blake2b", "size")
    files = [_record("ro-crate-metadata.json"), _record("a"), latest]
    doc = build_ro_crate({"name": "bare"}, files, "trayagent")
    entities = _by_id(doc)
    root = entities["./"]
    assert root["hasPart"] == [{"@id": "a"}]
    assert entities["a"]["contentSize"] == "5"
    assert "funder" not in root and root["description"] and root["datePublished"]
    assert entities["ro-crate-metadata.json"]["@type"] == "CreativeWork"


def test_hundred_thousand_files_is_linear() -> None:
    files = (FileRecord(f"scan/{i:06d}.h5", i, 1.0, f"{i:032x}", "md5", "hash") for i in range(100_000))
    start = time.perf_counter()
    doc = build_ro_crate(DATASET, files, "trayagent")
    elapsed = time.perf_counter() - start
    assert len(_by_id(doc)["./"]["hasPart"]) == 100_000
    assert elapsed < 10


# -- streaming (issue 22: a million files without holding them) ------------------------------------


def _streamed(records: list[FileRecord]) -> dict[str, Any]:
    out = io.StringIO()
    checksums = sorted({(r.algorithm, r.checksum) for r in records if r.checksum})
    stream_ro_crate(DATASET, lambda: iter(records), checksums, out, generator="trayagent")
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def test_the_streamed_manifest_is_the_built_one() -> None:
    """Same entities (order aside: the graph is a set) for odd names, shared and distinct checksums,
    sha256 inline, a file without checksum, and a file named like the manifest (not listed)."""
    records = [_record(n) for n in ODD_NAMES] + [
        _record("z/shared.h5"), _record("s.h5", "sha256", "ab" * 32), _record("none.h5", "md5", ""),
        _record("k.h5", "blake3", "0f" * 32), _record("ro-crate-metadata.json", "md5", "11" * 16)]
    built = build_ro_crate(DATASET, records, generator="trayagent")
    streamed = _streamed(records)
    assert streamed["@context"] == built["@context"]

    def by_id(doc: dict[str, Any]) -> dict[str, Any]:
        return {e["@id"]: e for e in doc["@graph"]}
    got, want = by_id(streamed), by_id(built)
    assert got.pop("#md5-" + "11" * 16)["value"] == "11" * 16  # the skipped file's checksum: listed, unused
    assert got == want
    assert len(streamed["@graph"]) == len(got) + 1  # every entity once


def test_the_spool_stays_in_memory_while_small_and_moves_to_a_file_beyond(tmp_path: Path) -> None:
    with Spool(tmp_path, limit=100) as small:
        small.write("é" * 10)
        assert small.path is None and small.getvalue() == ("é" * 10).encode()
    with Spool(tmp_path, limit=100) as big:
        big.write("x" * 60)
        big.write("y" * 60)
        big.flush()
        assert big.path is not None and big.path.read_bytes() == b"x" * 60 + b"y" * 60
        where = big.path
    assert not where.exists()  # removed on exit


def test_media_types_are_those_of_mimetypes_per_file_name() -> None:
    """The manifest looks a media type up once per distinct ending; the answer per file is the
    standard library's (leading dots, compound endings, case, no ending)."""
    import mimetypes

    from trayagent.pipeline.manifest import _media_type, _suffixes
    names = ["d/f0001.dat", "scan.tar.gz", "README", "img.TIF", "a.b/c", ".hidden", ".json", "..x.tar.gz",
             "q/.hidden.txt", "b.c.d.png", "x.", "frame.h5", "data.JSON", "movie.MP4", "x.tar.bz2"]
    for name in names:
        assert _media_type(_suffixes(name)) == mimetypes.guess_type(name, strict=False)[0], name
