"""The SciCat catalogue through its Catalogue API, against the contract fake over loopback.

What must hold: one dataset per storage folder (re-runs reuse it), every file registered exactly once
with its size and checksum (also across token expiry, lost answers and outages), blocks cut at 20,000
files and under the body limit, and errors that say what to do.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from scicat_server import ScicatServer

from trayagent.catalogue.base import DatasetSpec, FileRecord, StorageLocation
from trayagent.catalogue.scicat.auth import login_catalogue
from trayagent.catalogue.scicat.catalogue import ScicatCatalogue
from trayagent.errors import CatalogueError, LoginRequired

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


def test_dataset_has_every_required_field_and_files_all_sizes_and_checksums(scicat, catalogue) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    assert pid.startswith("20.500.12269/")
    d = scicat.datasets[pid]
    assert (d["type"], d["ownerGroup"], d["owner"], d["contactEmail"]) == ("raw", "p1234", "Alice Liddell",
                                                                         "alice@example.org")
    assert (d["sourceFolder"], d["sourceFolderHost"]) == ("/20260123/run42", "store.example.org")
    assert (d["datasetName"], d["creationLocation"], d["principalInvestigator"]) == \
        ("run42", "/PSI/SLS/TOMCAT", "Alice Liddell")
    assert d["scientificMetadata"]["investigation_description"] == "why stones"
    assert d["scientificMetadata"]["energy"] == {"value": 20, "unit": "keV"}
    batch = files(1500)
    for start in range(0, 1500, 1000):  # as the engine calls it
        catalogue.register_files(pid, batch[start:start + 1000])
    got = {f["path"]: f for f in scicat.files_of(pid)}
    assert len(got) == 1500
    for f in batch:
        assert (got[f.path]["size"], got[f.path]["chk"]) == (f.size, f.checksum)
    assert {b["chkAlg"] for b in scicat.blocks.values()} == {"md5"}
    assert (d["numberOfFiles"], d["size"]) == (1500, sum(f.size for f in batch))
    listed = catalogue.list_files(pid)
    assert [(r.path, r.size, r.checksum) for r in listed] == [(f.path, f.size, f.checksum) for f in batch]
    assert abs(listed[0].mtime - batch[0].mtime) < 0.001
    catalogue.finish_dataset(pid)
    info = catalogue.dataset_info(pid)
    assert info["name"] == "run42" and info["finished"] and info["number_of_files"] == 1500
    assert scicat.datasets[pid]["scientificMetadata"]["trayagent"]["complete"] is True


def test_rerun_reuses_the_dataset_and_sends_nothing_twice(scicat, catalogue) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(300))
    again = catalogue.make()
    assert again.ensure_dataset(SPEC, LOCATION) == pid
    again.register_files(pid, files(300))
    again.close()
    assert scicat.counts["POST /datasets"] == 1 and scicat.counts["POST /origdatablocks"] == 1
    assert len(scicat.datasets) == 1
    other = StorageLocation(LOCATION.url, "other.example.org", LOCATION.path)  # same path, other host
    assert catalogue.ensure_dataset(SPEC, other) != pid


def test_25000_files_make_two_blocks(scicat, catalogue) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(25_000))
    sizes = sorted(len(b["dataFileList"]) for b in scicat.blocks.values())
    assert sizes == [5_000, 20_000]
    assert scicat.datasets[pid]["numberOfFiles"] == 25_000


def test_modified_file_is_patched_in_its_block(scicat, catalogue) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(10))
    changed = FileRecord("scan/f000003.tif", 99, 1_800_000_000.0, "new-checksum", "md5", "hash")
    catalogue.register_files(pid, [changed, *files(2, start=10)])
    assert scicat.counts["PATCH /origdatablocks/{id}"] == 1
    got = {f["path"]: f for f in scicat.files_of(pid)}
    assert len(got) == 12 and sum(registered(scicat, pid).values()) == 12
    assert (got[changed.path]["size"], got[changed.path]["chk"]) == (99, "new-checksum")
    assert scicat.datasets[pid]["size"] == sum(f["size"] for f in got.values())


def test_lost_answer_after_block_created_registers_nothing_twice(scicat, catalogue) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    scicat.fail("truncate", times=1, path="/api/v3/origdatablocks")
    with pytest.raises(CatalogueError) as caught:
        catalogue.register_files(pid, files(50))
    assert caught.value.transient and "cut off" in caught.value.message
    catalogue.register_files(pid, files(60))  # the engine retries (with more files by then)
    assert registered(scicat, pid) == Counter(f.path for f in files(60))
    assert scicat.counts["GET /datasets/{id}/origdatablocks"] >= 2  # the index was rebuilt


def test_lost_index_is_rebuilt_from_the_server(scicat, catalogue, tmp_path: Path) -> None:
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(100))
    catalogue.close()
    (tmp_path / "scicat-index.sqlite").unlink()
    fresh = catalogue.make()
    fresh.register_files(pid, files(120))
    fresh.close()
    assert registered(scicat, pid) == Counter(f.path for f in files(120))


def test_smaller_body_limit_splits_blocks(scicat, catalogue) -> None:
    scicat.body_limit = 100_000
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(2_000))
    assert registered(scicat, pid) == Counter(f.path for f in files(2_000))
    assert len(scicat.blocks) > 1


def test_token_expiry_mid_registration_relogs_in_with_keyring_password(scicat, scicat_config,
                                                                      catalogue) -> None:
    scicat.token_lifetime = 1
    login_catalogue(scicat_config(), "alice", password=scicat.users["alice"].password)
    pid = catalogue.ensure_dataset(SPEC, LOCATION)
    catalogue.register_files(pid, files(100))
    time.sleep(1.2)  # expired: renewed before sending
    catalogue.register_files(pid, files(100, start=100))
    scicat.token_lifetime = 3600
    scicat.revoked.add(catalogue.http.tokens._token)  # rejected by the server: renewed on the 401
    catalogue.register_files(pid, files(100, start=200))
    assert registered(scicat, pid) == Counter(f.path for f in files(300))
    assert scicat.counts["POST /auth/login"] == 4  # fixture, this test, after expiry, after the 401


def test_token_expiry_without_password_pauses_until_login(scicat, scicat_config, tmp_path: Path) -> None:
    cfg = scicat_config()
    login_catalogue(cfg, token=scicat.issue_token("alice", lifetime=2))
    cat = ScicatCatalogue.from_config(cfg, tmp_path / "index.sqlite")
    pid = cat.ensure_dataset(SPEC, LOCATION)
    cat.register_files(pid, files(100))
    time.sleep(2.1)
    with pytest.raises(LoginRequired, match="expired"):
        cat.register_files(pid, files(200))
    login_catalogue(cfg, token=scicat.issue_token("alice"))  # `trayagent login --token-stdin`
    cat.register_files(pid, files(200))
    cat.close()
    assert registered(scicat, pid) == Counter(f.path for f in files(200))


def test_not_logged_in_raises_login_required_on_first_use(scicat_config, tmp_path: Path) -> None:
    cat = ScicatCatalogue.from_config(scicat_config(), tmp_path / "index.sqlite")
    with pytest.raises(LoginRequired, match="trayagent login"):
        cat.ensure_dataset(SPEC, LOCATION)


def test_proposal_prefills_pi_group_and_title(scicat, catalogue) -> None:
    scicat.add_proposal("20231234", "p1234", "Stones under X-rays", pi_firstname="Marie", pi_lastname="Curie")
    spec = DatasetSpec(name="p", proposal="20231234", creation_location="/X")
    pid = catalogue.ensure_dataset(spec, LOCATION)
    d = scicat.datasets[pid]
    assert (d["principalInvestigator"], d["ownerGroup"]) == ("Marie Curie", "p1234")
    assert d["proposalId"] == "20231234"
    assert d["scientificMetadata"]["proposal_title"] == "Stones under X-rays"


def test_proposal_missing_unreadable_and_creation_rights(scicat, catalogue) -> None:
    spec = DatasetSpec(name="p", proposal="2024/77", creation_location="/X")
    with pytest.raises(CatalogueError, match="does not exist") as caught:
        catalogue.ensure_dataset(spec, LOCATION)
    assert "create_proposals" in caught.value.hint
    with pytest.raises(CatalogueError, match="may not create proposal") as caught:
        catalogue.make(create_proposals=True).ensure_dataset(spec, LOCATION)
    scicat.add_proposal("secret", "p999", "Not yours")
    with pytest.raises(CatalogueError, match="may not read proposal secret"):
        catalogue.ensure_dataset(DatasetSpec(name="p", proposal="secret"), LOCATION)
    scicat.users["alice"].admin = True
    pid = catalogue.make(create_proposals=True).ensure_dataset(spec, LOCATION)
    assert scicat.proposals["2024/77"]["ownerGroup"] == "p1234"
    assert scicat.datasets[pid]["proposalId"] == "2024/77"


def test_wrong_owner_group_403_names_the_groups(scicat, catalogue) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue.make(owner_group="p9999").ensure_dataset(SPEC, LOCATION)
    assert "'p9999'" in caught.value.message and "p1234, staff" in caught.value.message
    assert "owner_group" in caught.value.hint and not caught.value.transient


def test_400_shows_the_server_message(scicat, catalogue) -> None:
    bad = DatasetSpec(name="k", keywords=(7,), creation_location="/X")  # type: ignore[arg-type]
    with pytest.raises(CatalogueError, match=r"keywords\.0: Input should be a valid string") as caught:
        catalogue.ensure_dataset(bad, LOCATION)
    assert not caught.value.transient


@pytest.mark.parametrize("kind,transient,words", [
    ("500", True, "HTTP 500"), ("html502", True, "HTTP 502"), ("html200", False, "web page"),
    ("truncate", True, "cut off")])
def test_bad_answers_are_clear_errors(scicat, catalogue, kind: str, transient: bool, words: str) -> None:
    scicat.fail(kind, path="/datasets")
    with pytest.raises(CatalogueError) as caught:
        catalogue.ensure_dataset(SPEC, LOCATION)
    assert caught.value.transient is transient and words in caught.value.message
    scicat.fail(None)
    assert catalogue.ensure_dataset(SPEC, LOCATION)


def test_server_down_then_back(scicat, catalogue) -> None:
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
