"""The SciCat catalogue through its Catalogue API, against the REAL backend (v4.27.0, tests/support/scicat_real.py).

What must hold: one dataset per storage folder (re-runs reuse it), every file registered exactly once
with its current size and checksum (also after modification and across token expiry), blocks cut at
20,000 files, and refusals that say whose problem they are. Everything is read back with plain
``requests`` (``ScicatReader``), as a client trayagent did not write would read it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from scicat_real import RealScicat, ScicatReader, unique

from trayagent.catalogue.base import DatasetSpec, FileRecord, StorageLocation
from trayagent.catalogue.scicat.auth import login_catalogue
from trayagent.catalogue.scicat.catalogue import ScicatCatalogue
from trayagent.errors import CatalogueError, LoginRequired

SPEC = DatasetSpec(name="run42", description="tomography of a stone", investigation_description="why stones",
                   owner="beamuser", creation_location="/PSI/SLS/TOMCAT", source_folders=("/data/run42",),
                   keywords=("tomo", "stone"), metadata={"energy": {"value": 20, "unit": "keV"}})


def location(host: str = "store.example.org", url: str = "webdav+https://store.example.org/dav") -> StorageLocation:
    """A storage folder no other test uses."""
    return StorageLocation(url, host, f"20260123/{unique('run')}")


def files(n: int, start: int = 0, chk: str = "c") -> list[FileRecord]:
    return [FileRecord(f"scan/f{i:06d}.tif", 1000 + i, 1_700_000_000.5 + i, f"{chk}{i:031x}", "md5", "hash")
            for i in range(start, start + n)]


@pytest.fixture
def reader(real_scicat: RealScicat) -> ScicatReader:
    return real_scicat.reader()


@pytest.fixture
def catalogue(real_scicat: RealScicat, real_config, tmp_path: Path):  # type: ignore[no-untyped-def]
    """beamuser (group p20260123) logged in with a password kept in the keyring; ``make`` builds more."""
    login_catalogue(real_config(), "beamuser", password="beamuser-pw")
    made: list[ScicatCatalogue] = []

    def make(**catalogue_keys: object) -> ScicatCatalogue:
        made.append(ScicatCatalogue.from_config(real_config(**catalogue_keys), tmp_path / "scicat-index.sqlite"))
        return made[-1]

    cat = make()
    cat.make = make  # type: ignore[attr-defined]
    yield cat
    for c in made:
        c.close()


def by_path(reader: ScicatReader, pid: str) -> dict[str, dict[str, Any]]:
    got = reader.files(pid)
    assert len(got) == len({f["path"] for f in got}), "a file is listed twice"
    return {f["path"]: f for f in got}


def test_dataset_has_every_required_field_and_files_all_sizes_and_checksums(catalogue, reader) -> None:
    where = location()
    pid = catalogue.ensure_dataset(SPEC, where)
    assert pid.startswith("20.500.12269/")
    batch = files(1500)
    for start in range(0, 1500, 1000):  # as the engine calls it
        catalogue.register_files(pid, batch[start:start + 1000])
    d = reader.dataset(pid)
    assert (d["type"], d["ownerGroup"], d["owner"], d["contactEmail"]) == ("raw", "p20260123", "beamuser",
                                                                         "beamuser@scicat.test")
    assert (d["sourceFolder"], d["sourceFolderHost"]) == ("/" + where.path, "store.example.org")
    assert (d["datasetName"], d["creationLocation"], d["principalInvestigator"], d["description"]) == \
        ("run42", "/PSI/SLS/TOMCAT", "beamuser", "tomography of a stone")
    assert d["scientificMetadata"]["investigation_description"] == "why stones"
    energy = d["scientificMetadata"]["energy"]  # the backend adds valueSI and unitSI
    assert (energy["value"], energy["unit"], energy["unitSI"]) == (20, "keV", "(kg m^2) / s^2")
    got = by_path(reader, pid)
    assert len(got) == 1500
    for f in batch:
        assert (got[f.path]["size"], got[f.path]["chk"], got[f.path]["chkAlg"]) == (f.size, f.checksum, "md5")
    assert (d["numberOfFiles"], d["size"]) == (1500, sum(f.size for f in batch))
    listed = catalogue.list_files(pid)
    assert [(r.path, r.size, r.checksum) for r in listed] == [(f.path, f.size, f.checksum) for f in batch]
    assert abs(listed[0].mtime - batch[0].mtime) < 0.001
    catalogue.finish_dataset(pid)
    info = catalogue.dataset_info(pid)
    assert info["name"] == "run42" and info["finished"] and info["number_of_files"] == 1500
    assert reader.dataset(pid)["scientificMetadata"]["trayagent"]["complete"] is True


def test_rerun_reuses_the_dataset_and_sends_nothing_twice(catalogue, reader) -> None:
    where = location()
    pid = catalogue.ensure_dataset(SPEC, where)
    catalogue.register_files(pid, files(300))
    again = catalogue.make()
    assert again.ensure_dataset(SPEC, where) == pid
    again.register_files(pid, files(300))
    assert [d["pid"] for d in reader.datasets_in("/" + where.path)] == [pid]
    assert len(reader.blocks(pid)) == 1 and len(by_path(reader, pid)) == 300
    other = StorageLocation(where.url, "other.example.org", where.path)  # same path, other host
    assert catalogue.ensure_dataset(SPEC, other) != pid


def test_a_dataset_found_again_takes_the_latest_user_values_and_keeps_the_rest(catalogue, reader) -> None:
    """A re-run (here from another queue: a new catalogue instance) with corrected values: description,
    keywords and the user's entries are replaced; the harvested summary, trayagent's mark, the
    investigation description not given again, and everything trayagent does not own stay. The same
    values again change nothing (no PATCH: ``updatedAt`` stays)."""
    where = location()
    pid = catalogue.ensure_dataset(SPEC, where)
    catalogue.set_harvested(pid, {"energy": {"value": [12, 18.5], "unit": "keV"}})
    fixed = DatasetSpec(name="run42", description="tomography of a granite", keywords=("tomo", "granite"),
                        metadata={"sample": {"value": "granite", "unit": ""}})
    assert catalogue.make().ensure_dataset(fixed, where) == pid
    d = reader.dataset(pid)
    assert (d["description"], d["keywords"]) == ("tomography of a granite", ["tomo", "granite"])
    sm = d["scientificMetadata"]
    assert set(sm) == {"sample", "investigation_description", "harvested", "trayagent"}, "energy was replaced"
    assert sm["sample"]["value"] == "granite" and sm["investigation_description"] == "why stones"
    assert sm["harvested"]["energy"]["value"] == [12, 18.5] and sm["trayagent"]["storage_url"] == where.url
    assert (d["ownerGroup"], d["creationLocation"], d["datasetName"]) == ("p20260123", "/PSI/SLS/TOMCAT", "run42")
    catalogue.update_dataset(pid, SPEC)  # back to the first values, by id (the engine's way)
    sm = reader.dataset(pid)["scientificMetadata"]
    assert sm["energy"]["value"] == 20 and "sample" not in sm and sm["harvested"]["energy"]["value"] == [12, 18.5]
    stamp = reader.dataset(pid)["updatedAt"]
    time.sleep(0.01)
    catalogue.update_dataset(pid, SPEC)
    assert catalogue.make().ensure_dataset(SPEC, where) == pid
    assert reader.dataset(pid)["updatedAt"] == stamp, "nothing differed: nothing sent"


def test_25000_files_make_two_blocks(catalogue, reader) -> None:
    pid = catalogue.ensure_dataset(SPEC, location())
    catalogue.register_files(pid, files(25_000))
    assert sorted(len(b["dataFileList"]) for b in reader.blocks(pid)) == [5_000, 20_000]
    d = reader.dataset(pid)
    assert (d["numberOfFiles"], d["size"]) == (25_000, sum(f.size for f in files(25_000)))
    assert len(by_path(reader, pid)) == 25_000


def test_modified_file_is_patched_in_its_block(catalogue, reader) -> None:
    """Issue 17.1: the entries GET returns carry _id/id, which the real backend refuses on PATCH."""
    pid = catalogue.ensure_dataset(SPEC, location())
    catalogue.register_files(pid, files(10))
    changed = FileRecord("scan/f000003.tif", 99, 1_800_000_000.0, "d41d8cd98f00b204e9800998ecf8427e", "md5",
                         "hash")
    catalogue.register_files(pid, [changed, *files(2, start=10)])
    got = by_path(reader, pid)
    assert len(got) == 12 and len(reader.blocks(pid)) == 2
    assert (got[changed.path]["size"], got[changed.path]["chk"]) == (99, changed.checksum)
    assert set(got[changed.path]) - {"_id", "id", "chkAlg"} <= {"path", "size", "time", "chk"}
    d = reader.dataset(pid)
    assert (d["size"], d["numberOfFiles"]) == (sum(f["size"] for f in got.values()), 12)


def test_lost_index_is_rebuilt_from_the_server(catalogue, reader, tmp_path: Path) -> None:
    pid = catalogue.ensure_dataset(SPEC, location())
    catalogue.register_files(pid, files(100))
    catalogue.close()
    (tmp_path / "scicat-index.sqlite").unlink()
    fresh = catalogue.make()
    fresh.register_files(pid, files(120))
    assert Counter(f["path"] for f in reader.files(pid)) == Counter(f.path for f in files(120))


def test_token_expiry_mid_registration_relogs_in_with_keyring_password(
        short_scicat: RealScicat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens of this backend last 6 s: a stale one is replaced with the keyring password before it
    is sent, and one the server rejects is replaced once and the call repeated. The real v4.27.0
    rejects an expired token on POST /origdatablocks with 403 "Forbidden resource", not 401: that
    403 must renew the token, not end in "your account lacks the group"."""
    from trayagent.config import Config, validate

    cfg = Config.of(validate({"catalogue": {"kind": "scicat", "url": short_scicat.url}}, "test"), source=None)
    login_catalogue(cfg, "beamuser", password="beamuser-pw")
    cat = ScicatCatalogue.from_config(cfg, tmp_path / "index.sqlite")
    try:
        pid = cat.ensure_dataset(SPEC, location())
        cat.register_files(pid, files(100))
        first = cat.http.tokens._token
        time.sleep(6.5)  # expired: renewed before sending
        cat.register_files(pid, files(100, start=100))
        assert cat.http.tokens._token != first
        cat.http.tokens._token = first  # as if our clock were behind: only the server's answer tells
        cat.http.tokens._rejected.clear()
        monkeypatch.setattr("trayagent.catalogue.scicat.auth._fresh", bool)
        cat.register_files(pid, files(100, start=200))
    finally:
        cat.close()
    got = short_scicat.reader().files(pid)
    assert Counter(f["path"] for f in got) == Counter(f.path for f in files(300))


def test_token_expiry_without_password_pauses_until_login(short_scicat: RealScicat, tmp_path: Path) -> None:
    """A pasted token (no password in the keyring) that expires: LoginRequired, then a new token
    resumes registration with nothing lost or doubled."""
    from trayagent.config import Config, validate

    cfg = Config.of(validate({"catalogue": {"kind": "scicat", "url": short_scicat.url}}, "test"), source=None)
    login_catalogue(cfg, token=short_scicat.login("beamuser"))
    cat = ScicatCatalogue.from_config(cfg, tmp_path / "index.sqlite")
    try:
        pid = cat.ensure_dataset(SPEC, location())
        cat.register_files(pid, files(100))
        time.sleep(6.5)
        with pytest.raises(LoginRequired, match="expired"):
            cat.register_files(pid, files(200))
        login_catalogue(cfg, token=short_scicat.login("beamuser"))  # `trayagent login --token-stdin`
        cat.register_files(pid, files(200))
    finally:
        cat.close()
    assert Counter(f["path"] for f in short_scicat.reader().files(pid)) == Counter(f.path for f in files(200))


def test_not_logged_in_raises_login_required_on_first_use(real_config, tmp_path: Path) -> None:
    cat = ScicatCatalogue.from_config(real_config(), tmp_path / "index.sqlite")
    with pytest.raises(LoginRequired, match="trayagent login"):
        cat.ensure_dataset(SPEC, location())
    cat.close()


def test_proposal_prefills_pi_group_and_title(real_scicat: RealScicat, catalogue, reader) -> None:
    proposal = unique("2026")
    real_scicat.add_proposal(proposal, "p20260123", "Stones under X-rays", pi_firstname="Marie",
                             pi_lastname="Curie", pi_email="marie@example.org")
    pid = catalogue.ensure_dataset(DatasetSpec(name="p", proposal=proposal, creation_location="/X"), location())
    d = reader.dataset(pid)
    assert (d["principalInvestigator"], d["ownerGroup"], d["proposalId"]) == ("Marie Curie", "p20260123",
                                                                              proposal)
    assert d["scientificMetadata"]["proposal_title"] == "Stones under X-rays"
    assert d["description"] == "Stones under X-rays"


def test_proposal_missing_unreadable_and_creation_rights(real_scicat: RealScicat, real_config, catalogue,
                                                         reader, tmp_path: Path) -> None:
    spec = DatasetSpec(name="p", proposal=unique("2024/77"), creation_location="/X")
    with pytest.raises(CatalogueError, match="does not exist") as caught:
        catalogue.ensure_dataset(spec, location())
    assert "create_proposals" in caught.value.hint
    with pytest.raises(CatalogueError, match="may not create proposal") as caught:
        catalogue.make(create_proposals=True).ensure_dataset(spec, location())
    secret = unique("secret")
    real_scicat.add_proposal(secret, "p99999", "Not yours")
    with pytest.raises(CatalogueError, match=f"may not read proposal {secret}") as caught:
        catalogue.ensure_dataset(DatasetSpec(name="p", proposal=secret), location())
    assert "p20260123" in caught.value.message
    # an account in the proposal groups may create it; its dataset then belongs to the configured group
    login_catalogue(real_config(), "proposalIngestor", password="proposal-pw")
    creator = ScicatCatalogue.from_config(real_config(create_proposals=True, owner_group="proposalingestor"),
                                          tmp_path / "creator.sqlite")
    try:
        pid = creator.ensure_dataset(spec, location())
    finally:
        creator.close()
    made = reader.get(f"/proposals/{requests.utils.quote(str(spec.proposal), safe='')}")
    assert (made["ownerGroup"], made["email"]) == ("proposalingestor", "proposalingestor@scicat.test")
    assert reader.dataset(pid)["proposalId"] == spec.proposal


def test_wrong_owner_group_403_names_the_groups(catalogue) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue.make(owner_group="p99999").ensure_dataset(SPEC, location())
    assert "'p99999'" in caught.value.message and "p20260123" in caught.value.message
    assert "owner_group" in caught.value.hint and not caught.value.transient


def test_other_groups_files_are_refused_with_a_clear_message(real_scicat: RealScicat, real_config, catalogue,
                                                             tmp_path: Path) -> None:
    """otheruser (group p99999) may not add files to beamuser's dataset: a 403, said as such."""
    pid = catalogue.ensure_dataset(SPEC, location())
    login_catalogue(real_config(), "otheruser", password="otheruser-pw")
    other = ScicatCatalogue.from_config(real_config(), tmp_path / "other.sqlite")
    try:
        with pytest.raises(CatalogueError) as caught:
            other.register_files(pid, files(3))
    finally:
        other.close()
    assert "lacks the group" in caught.value.message and not caught.value.transient


def test_400_names_the_field_and_whose_problem_it_is(catalogue) -> None:
    bad = DatasetSpec(name="k", keywords=(7,), creation_location="/X")  # type: ignore[arg-type]
    with pytest.raises(CatalogueError, match=r"keywords") as caught:
        catalogue.ensure_dataset(bad, location())
    assert not caught.value.transient and "keywords" in caught.value.hint
    assert "Fix the value SciCat names" not in caught.value.hint


# -- issue 17.2: sourceFolderHost --------------------------------------------------------------------
@pytest.mark.parametrize("host,sent", [
    ("127.0.0.1", "127.0.0.1"), ("Store.Example.org", "store.example.org"),
    ("localhost", None), ("beamline-pc01", None), ("mystore", None), ("", None)])
def test_source_folder_host_is_sent_only_when_scicat_accepts_it(catalogue, reader, host: str,
                                                                sent: str | None) -> None:
    """The machine's bare hostname (embedded storage) and a named remote's name are refused by the
    backend as a URL host: the field is left out, and the dataset is still found again."""
    where = location(host=host)
    pid = catalogue.ensure_dataset(SPEC, where)
    assert reader.dataset(pid).get("sourceFolderHost") == sent
    assert catalogue.make().ensure_dataset(SPEC, where) == pid
    assert len(reader.datasets_in("/" + where.path)) == 1


def test_source_folder_host_set_by_the_site(catalogue, reader) -> None:
    where = location(host="beamline-pc01")
    pid = catalogue.make(source_folder_host="data.psi.ch").ensure_dataset(SPEC, where)
    assert reader.dataset(pid)["sourceFolderHost"] == "data.psi.ch"
    assert catalogue.make(source_folder_host="data.psi.ch").ensure_dataset(SPEC, where) == pid


def test_datasets_without_host_of_two_storages_stay_apart(catalogue, reader) -> None:
    """Two storages without a valid host (e.g. two named remotes) and the same folder name: the
    storage URL trayagent records keeps their datasets apart."""
    first = location(host="", url="rclone:archive:")
    second = StorageLocation("rclone:scratch:", "", first.path)
    assert catalogue.ensure_dataset(SPEC, first) != catalogue.ensure_dataset(SPEC, second)


# -- issue 17.3: contactEmail ------------------------------------------------------------------------
def test_account_without_email_needs_contact_email(real_scicat: RealScicat, real_config, reader,
                                                   tmp_path: Path) -> None:
    """SciCat refuses contactEmail "unknown" (400): say so before anything is sent, then use the
    configured address."""
    login_catalogue(real_config(), "noemail", password="noemail-pw")
    cat = ScicatCatalogue.from_config(real_config(), tmp_path / "index.sqlite")
    try:
        with pytest.raises(CatalogueError, match="contact email") as caught:
            cat.preflight()
        assert "contact_email" in caught.value.hint and not caught.value.transient
        with pytest.raises(CatalogueError, match="contact email"):
            cat.ensure_dataset(SPEC, location())
    finally:
        cat.close()
    cat = ScicatCatalogue.from_config(real_config(contact_email="beamline@example.org"),
                                      tmp_path / "index.sqlite")
    try:
        cat.preflight()
        pid = cat.ensure_dataset(SPEC, location())
    finally:
        cat.close()
    d = reader.dataset(pid)
    assert d["contactEmail"] == "beamline@example.org" and "ownerEmail" not in d


def test_contact_email_is_validated_in_the_configuration(real_config) -> None:
    from trayagent.errors import ConfigError

    with pytest.raises(ConfigError, match="contact_email: expected an email address"):
        real_config(contact_email="unknown")
    with pytest.raises(ConfigError, match="source_folder_host: expected an IP address or a dotted"):
        real_config(source_folder_host="beamline-pc01")


def test_refused_file_entries_are_grouped_and_called_a_trayagent_bug(catalogue, reader) -> None:
    """Issue 17.5: a 400 about fields trayagent sends itself is its own bug, and 100 identical
    problems are one line. Provoked for real: entries with a property the backend does not know."""
    from trayagent.catalogue.scicat.http import REPORT

    pid = catalogue.ensure_dataset(SPEC, location())
    catalogue.register_files(pid, files(1))
    entries = [{"path": f"x{i}", "size": 1, "time": "2026-01-01T00:00:00.000Z", "_id": "x"} for i in range(100)]
    with pytest.raises(CatalogueError) as caught:
        catalogue.http.call("POST", "/origdatablocks", "registering 100 files", fixable={},
                            body={"datasetId": pid, "size": 100, "dataFileList": entries})
    assert "100 file entries: property _id should not exist" in caught.value.message
    assert caught.value.message.count("should not exist") == 1
    assert caught.value.hint == REPORT
