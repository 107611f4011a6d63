"""The SciCat catalogue under faults a real backend will not produce on demand, against the contract
fake (tests/support/scicat_server.py) over loopback: an answer lost after the block was created, a body
limit smaller than the backend's default, 5xx and HTML pages from a proxy, a cut-off answer, the
server going away in the middle. Everything the real backend can serve is tested against it in
test_scicat_catalogue.py.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from scicat_server import ScicatServer

from trayagent.catalogue.base import DatasetSpec, FileRecord, StorageLocation
from trayagent.catalogue.scicat.auth import login_catalogue
from trayagent.catalogue.scicat.catalogue import ScicatCatalogue
from trayagent.errors import CatalogueError

LOCATION = StorageLocation("webdav+https://store.example.org/dav", "store.example.org", "20260123/run42")
SPEC = DatasetSpec(name="run42", description="tomography of a stone", investigation_description="why stones",
                   owner="alice", creation_location="/PSI/SLS/TOMCAT", source_folders=("/data/run42",),
                   keywords=("tomo", "stone"), metadata={"energy": {"value": 20, "unit": "keV"}})


def files(n: int, start: int = 0, chk: str = "c") -> list[FileRecord]:
    return [FileRecord(f"scan/f{i:06d}.tif", 1000 + i, 1_700_000_000.5 + i, f"{chk}{i:032x}", "md5", "hash")
            for i in range(start, start + n)]


@pytest.fixture
def catalogue(scicat: ScicatServer, scicat_config, tmp_path: Path):  # type: ignore[no-untyped-def]
    login_catalogue(scicat_config(), "alice", password=scicat.users["alice"].password)

    def make(**catalogue_keys: object) -> ScicatCatalogue:
        return ScicatCatalogue.from_config(scicat_config(**catalogue_keys), tmp_path / "scicat-index.sqlite")

    cat = make()
    cat.make = make  # type: ignore[attr-defined]
    yield cat
    cat.close()


def registered(scicat: ScicatServer, pid: str) -> Counter[str]:
    return Counter(f["path"] for f in scicat.files_of(pid))










def test_lost_answer_after_block_created_registers_nothing_twice(scicat, catalogue) -> None:
    """Fake: the real backend cannot be made to cut off its answer after it stored the block."""
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    scicat.fail("truncate", times=1, path="/api/v3/origdatablocks")
    with pytest.raises(CatalogueError) as caught:
        catalogue.register_files(pid, files(50))
    assert caught.value.transient and "cut off" in caught.value.message
    catalogue.register_files(pid, files(60))  # the engine retries (with more files by then)
    assert registered(scicat, pid) == Counter(f.path for f in files(60))
    assert scicat.counts["GET /datasets/{id}/origdatablocks"] >= 2  # the index was rebuilt




def test_smaller_body_limit_splits_blocks(scicat, catalogue) -> None:
    """Fake: a site's smaller body limit (413) needs a backend restart with another
    MAX_FILE_UPLOAD_SIZE; the fake changes it on demand."""
    scicat.body_limit = 100_000
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(2_000))
    assert registered(scicat, pid) == Counter(f.path for f in files(2_000))
    assert len(scicat.blocks) > 1
















@pytest.mark.parametrize("kind,transient,words", [
    ("500", True, "HTTP 500"), ("html502", True, "HTTP 502"), ("html200", False, "web page"),
    ("truncate", True, "cut off")])
def test_bad_answers_are_clear_errors(scicat, catalogue, kind: str, transient: bool, words: str) -> None:
    """Fake: a 500, a proxy's HTML page (502 or 200) and a cut-off body do not come from the real
    backend on demand."""
    scicat.fail(kind, path="/datasets")
    with pytest.raises(CatalogueError) as caught:
        catalogue.ensure_dataset(SPEC, LOCATION)
    assert caught.value.transient is transient and words in caught.value.message
    scicat.fail(None)
    assert catalogue.ensure_dataset(SPEC, LOCATION)


def test_server_down_then_back(scicat, catalogue) -> None:
    """Fake: stopping the session's real backend mid-test would cost every later test its start-up."""
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    scicat.down()
    try:
        with pytest.raises(CatalogueError) as caught:
            catalogue.register_files(pid, files(10))
        assert caught.value.transient and "unreachable" in caught.value.message
    finally:
        scicat.up()
    catalogue.register_files(pid, files(10))
    assert registered(scicat, pid) == Counter(f.path for f in files(10))
