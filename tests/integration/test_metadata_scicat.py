"""Scientific metadata into the REAL SciCat backend (v4.27.0), through the real CLI: a batch upload and
a sync session with a beamline template, keywords, user entries and files to harvest (NeXus/HDF5 made
with h5py, TIFF made with tifffile). The dataset is read back with plain ``requests``: ``keywords``,
the user's entries at the top of ``scientificMetadata`` in ``{"value", "unit"}`` form (the template's
defaults included), and what was read from the files under ``scientificMetadata.harvested``, updated
while a sync session brings new files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from metafiles import TEMPLATE_TOML, make_nexus, make_tiff
from scicat_real import RealScicat, ScicatReader, unique
from waiting import wait_for


@pytest.fixture
def beamline(ta: Trayagent, real_scicat: RealScicat) -> Trayagent:
    templates = ta.home / "config" / "templates"
    templates.mkdir(parents=True)
    (templates / "tomcat.toml").write_text(TEMPLATE_TOML)
    ta.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url}, "dataset": {"template": "tomcat"}})
    ta.run("login", "--user", "beamuser", "--password-stdin", input="beamuser-pw\n", check=True)
    return ta


def pair(entry: dict[str, Any]) -> tuple[Any, str]:
    """(value, unit) of an entry; the backend adds valueSI and unitSI where it knows the unit."""
    return entry["value"], entry["unit"]


def one_dataset(reader: ScicatReader, folder: str) -> dict[str, Any]:
    found = reader.datasets_in(folder)
    assert len(found) == 1, f"{len(found)} datasets in {folder}"
    return found[0]


def test_batch_upload_sends_keywords_template_values_and_harvested_metadata(
        beamline: Trayagent, real_scicat: RealScicat, tmp_path: Path) -> None:
    name, proposal = unique("meta"), unique("2026")
    real_scicat.add_proposal(proposal, "p20260123", "Stones under X-rays")
    src = tmp_path / name
    make_nexus(src / "scan_001.nxs", energy_kev=12.0, start="2026-01-23T09:00:00Z", end="2026-01-23T09:10:00Z")
    make_nexus(src / "scan_002.nxs", energy_kev=18.5, start="2026-01-23T09:20:00Z", end="2026-01-23T09:45:00Z")
    make_tiff(src / "flat.tif", width=64, height=32, exposure_s=0.1, when="2026:01:23 09:30:00")
    code, out = beamline.upload_json(str(src), "--dataset", name, "--proposal", proposal, "--keyword", "tomography",
                                     "--keyword", "SLS", "--metadata", "sample_name=Si-17", "--metadata",
                                     "detector_distance=120 mm", timeout=180)
    assert code == 0 and out["files_ok"] == 3, out
    d = one_dataset(real_scicat.reader(), "/" + out["storage_path"])
    assert d["pid"] == out["catalogue_id"]
    assert d["keywords"] == ["tomography", "SLS"]
    sm = d["scientificMetadata"]
    assert {k: pair(sm[k]) for k in ("sample_name", "detector_distance", "energy", "temperature")} == {
        "sample_name": ("Si-17", ""), "detector_distance": (120, "mm"),
        "energy": (20, "keV"), "temperature": (295, "K")}  # the last two: the template's defaults
    assert sm["detector_distance"]["valueSI"] == pytest.approx(0.12)  # SciCat read the unit as a unit
    h = sm["harvested"]
    assert pair(h["energy"]) == ([12, 18.5], "keV")
    assert h["wavelength"]["unit"] == "angstrom" and len(h["wavelength"]["value"]) == 2
    assert (h["start_time"]["value"], h["end_time"]["value"]) == ("2026-01-23T09:00:00Z", "2026-01-23T09:45:00Z")
    assert h["instruments"]["value"] == ["TOMCAT"] and h["source"]["value"] == "Swiss Light Source"
    assert h["sample"]["value"] == "Si-17" and h["definition"]["value"] == "NXtomo"
    assert h["detectors"]["value"] == ["pco.edge 5.5"]
    assert pair(h["exposure_time"]) == (0.1, "s") and pair(h["bit_depth"]) == (16, "bit")
    assert h["files_harvested"]["value"] == 3
    assert sm["trayagent"]["complete"] is True


def test_sync_session_updates_harvested_metadata_as_files_arrive(
        beamline: Trayagent, real_scicat: RealScicat, tmp_path: Path) -> None:
    name = unique("live")
    src = tmp_path / name
    src.mkdir()
    beamline.write_config({"catalogue": {"kind": "scicat", "url": real_scicat.url},
                           "dataset": {"template": "tomcat"}, "sync": {"quiet_seconds": 0.5}})
    proc = beamline.popen("sync", str(src), "--dataset", name, "--keyword", "live", "--metadata",
                          "sample_name=Fe-3", "--metadata", "energy=30 keV")
    reader = real_scicat.reader()
    folder = f"/no-proposal/{name}"

    def harvested() -> dict[str, Any] | None:
        found = reader.datasets_in(folder)
        return (found[0]["scientificMetadata"].get("harvested") or None) if found else None

    make_nexus(src / "scan_001.nxs", energy_kev=12.0)
    wait_for(lambda: (h := harvested()) and h["energy"]["value"] == 12, 60, "the first file's energy in SciCat")
    make_nexus(src / "scan_002.nxs", energy_kev=25.0, detector="GigaFRoST")
    wait_for(lambda: (h := harvested()) and h["energy"]["value"] == [12, 25], 60, "the range after the second file")
    fin = beamline.run("sync", "--finalize", name, timeout=120)
    assert fin.returncode == 0, fin.stderr
    proc.wait(60)
    d = one_dataset(reader, folder)
    assert d["keywords"] == ["live"]
    sm = d["scientificMetadata"]
    assert pair(sm["energy"]) == (30, "keV") and sm["sample_name"]["value"] == "Fe-3"
    assert sm["harvested"]["detectors"]["value"] == ["GigaFRoST", "pco.edge 5.5"]
    assert sm["harvested"]["files_harvested"]["value"] == 2 and sm["trayagent"]["complete"] is True


def test_a_rerun_with_new_values_shows_them_and_keeps_the_harvested(
        beamline: Trayagent, real_scicat: RealScicat, tmp_path: Path) -> None:
    """The same folder sent again into the same dataset with other values (the sample was misnamed, a
    keyword and the description corrected, the energy now given): SciCat, the local manifest beside the
    data and the dataset's identity follow the latest run; what was read from the files stays apart."""
    name = unique("rerun")
    src = tmp_path / name
    make_nexus(src / "scan_001.nxs", energy_kev=12.0)
    code, first = beamline.upload_json(str(src), "--dataset", name, "--keyword", "tomograpy", "--description",
                                       "Si wafer, first try", "--metadata", "sample_name=Si-17", timeout=180)
    assert code == 0 and first["files_ok"] == 1, first
    code, again = beamline.upload_json(str(src), "--dataset", name, "--keyword", "tomography", "--keyword", "SLS",
                                       "--description", "Ge wafer", "--metadata", "sample_name=Ge-4",
                                       "--metadata", "energy=25 keV", timeout=180)
    assert code == 0 and again["catalogue_id"] == first["catalogue_id"], again
    d = one_dataset(real_scicat.reader(), "/" + again["storage_path"])
    assert d["keywords"] == ["tomography", "SLS"] and d["description"] == "Ge wafer"
    sm = d["scientificMetadata"]
    assert sm["sample_name"]["value"] == "Ge-4" and pair(sm["energy"]) == (25, "keV")
    assert pair(sm["temperature"]) == (295, "K")  # the template's default, both times
    assert sm["harvested"]["energy"]["value"] == 12 and sm["harvested"]["sample"]["value"] == "Si-17"
    assert sm["trayagent"]["complete"] is True
    crate = json.loads(next(beamline.storage_dir.rglob("ro-crate-metadata.json")).read_text())
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["#meta-sample_name"]["value"] == "Ge-4" and graph["#meta-energy"]["value"] == 25
    assert graph["./"]["keywords"] == "tomography, SLS" and graph["./"]["description"] == "Ge wafer"
    assert graph["#harvested-energy"]["value"] == 12
