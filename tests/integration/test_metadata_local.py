"""Metadata end to end through the real CLI, real rclone and the local catalogue: the template checked
before anything is sent, user entries and keywords recorded, metadata harvested from real NeXus/HDF5
and TIFF files beside the upload, and the faults: a corrupt HDF5 file, a TIFF over the size budget, and
a facility's extractors (a real entry point of the ``trayagent.extractors`` group, in a distribution
on PYTHONPATH) that raise or hang. The upload completes, each problem is in the log, and nothing wrong
is registered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from agentctl import Trayagent
from metafiles import TEMPLATE_TOML, make_nexus, make_tiff

PLUGIN = '''
import threading, time

class Raises:
    name = "acme-raises"
    suffixes = (".raw",)
    def __call__(self, path):
        raise ValueError("acme cannot parse " + path.name)

class Hangs:
    name = "acme-hangs"
    suffixes = (".dat",)
    def __call__(self, path):
        threading.Event().wait(3600)

def log_extractor(path):
    """A plain function with attributes works too."""
    text = path.read_text()
    return {"operator": text.split("=", 1)[1].strip()}
log_extractor.name = "acme-log"
log_extractor.suffixes = (".log",)
'''


def install_plugin(root: Path) -> Path:
    """A real distribution with entry points, found by importlib.metadata on PYTHONPATH."""
    info = root / "acme_extractors-1.0.dist-info"
    info.mkdir(parents=True)
    (root / "acme_extractors.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-extractors\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[trayagent.extractors]\nraises = acme_extractors:Raises\n"
                                           "hangs = acme_extractors:Hangs\nlog = acme_extractors:log_extractor\n")
    return root


@pytest.fixture
def beamline(ta: Trayagent) -> Trayagent:
    templates = ta.home / "config" / "templates"
    templates.mkdir(parents=True)
    (templates / "tomcat.toml").write_text(TEMPLATE_TOML)
    ta.write_config({"dataset": {"template": "tomcat", "harvest_seconds": 1, "harvest_max_bytes": 1_000_000}})
    return ta


def test_a_missing_required_field_exits_2_and_names_it(beamline: Trayagent, tmp_path: Path) -> None:
    make_nexus(tmp_path / "run" / "scan.nxs")
    for command in ("upload", "sync"):
        proc = beamline.run(command, str(tmp_path / "run"), "--dataset", "run", "--metadata", "energy=12 keV",
                            timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "sample_name: required" in proc.stderr and "--metadata KEY=VALUE" in proc.stderr
        assert "Traceback" not in proc.stderr
    proc = beamline.run("upload", str(tmp_path / "run"), "--dataset", "run", "--metadata", "sample_name=Si",
                        "--metadata", "energy=99 keV", timeout=60)
    assert proc.returncode == 2 and "energy: at most 60" in proc.stderr
    assert not beamline.storage_dir.exists() or not any(beamline.storage_dir.rglob("*.nxs")), "nothing was sent"


def test_upload_records_user_and_harvested_metadata_apart_through_faults(
        beamline: Trayagent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(install_plugin(tmp_path / "plugins")))
    monkeypatch.setenv("TZ", "UTC")  # the TIFF's local DateTime, compared with the NeXus times
    src = tmp_path / "run7"
    make_nexus(src / "scan_001.nxs", energy_kev=12.0, start="2026-01-23T09:00:00Z", end="2026-01-23T09:10:00Z")
    make_nexus(src / "scan_002.h5", energy_kev=18.5, start="2026-01-23T09:20:00Z", end="2026-01-23T09:45:00Z",
               detector="GigaFRoST")
    make_tiff(src / "images" / "flat.tif", width=64, height=32, exposure_s=0.1, when="2026:01:23 09:30:00")
    make_tiff(src / "images" / "huge.tif", width=2000, height=1000)  # 4 MB: over the 1 MB budget
    (src / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0not really" * 500)
    (src / "frames.raw").write_bytes(b"\1" * 1000)  # the raising extractor's
    (src / "stream.dat").write_bytes(b"\2" * 1000)  # the hanging extractor's
    (src / "operator.log").write_text("operator = Marie\n")
    extra = tmp_path / "meta.json"
    extra.write_text(json.dumps({"detector_distance": {"value": 120, "unit": "mm"}, "sample_name": "from file"}))
    began = time.monotonic()
    code, out = beamline.upload_json(str(src), "--dataset", "run7", "--keyword", "tomography", "--keyword", "SLS",
                                     "--metadata-file", str(extra), "--metadata", "sample_name=Si-17",
                                     "--metadata", "energy=15 keV", timeout=120)
    took = time.monotonic() - began
    assert code == 0 and out["files_ok"] == 8 and out["files_failed"] == 0, out
    assert took < 30, f"a hanging extractor held the upload up: {took:.1f} s"
    files = beamline.catalogue_files("run7")
    assert len(files) == 8, "every file registered, the unreadable ones too (they are data, just not metadata)"
    [row] = beamline.catalogue_datasets()
    assert json.loads(row["keywords"]) == ["tomography", "SLS"]
    meta = json.loads(row["metadata"])
    harvested = meta.pop("harvested")
    assert meta == {"sample_name": {"value": "Si-17", "unit": ""},  # --metadata wins over the file
                    "energy": {"value": 15.0, "unit": "keV"},  # the user's, kept apart from the harvested
                    "temperature": {"value": 295, "unit": "K"},  # the template's default
                    "detector_distance": {"value": 120, "unit": "mm"}}
    assert harvested["energy"] == {"value": [12, 18.5], "unit": "keV"}
    assert harvested["start_time"]["value"] == "2026-01-23T09:00:00Z"
    assert harvested["end_time"]["value"] == "2026-01-23T09:45:00Z"
    assert harvested["detectors"]["value"] == ["GigaFRoST", "pco.edge 5.5"]
    assert harvested["instruments"]["value"] == ["TOMCAT"] and harvested["sample"]["value"] == "Si-17"
    assert harvested["exposure_time"] == {"value": 0.1, "unit": "s"}
    assert harvested["image_width"] == {"value": 64, "unit": "pixel"}, "the huge TIFF was not read"
    assert harvested["operator"]["value"] == "Marie", "the facility's entry point was used"
    assert harvested["files_harvested"]["value"] == 4
    log = beamline.log_text
    assert "broken.h5" in log and "'nexus' cannot read" in log
    assert "huge.tif" in log and "over the 1000000-byte budget" in log
    assert "'acme-raises' cannot read" in log and "acme cannot parse frames.raw" in log
    assert "'acme-hangs' took longer than 1 s on" in log and "stream.dat" in log
    crate = json.loads(next(beamline.storage_dir.rglob("ro-crate-metadata.json")).read_text())
    props = {e["@id"]: e for e in crate["@graph"] if e.get("@type") == "PropertyValue" and "description" in e}
    assert props["#meta-energy"]["unitText"] == "keV" and props["#meta-energy"]["value"] == 15.0
    assert (props["#harvested-energy"]["minValue"], props["#harvested-energy"]["maxValue"]) == (12, 18.5)
    assert props["#meta-detector_distance"]["unitText"] == "mm"


def test_a_template_named_in_the_site_file_is_found_beside_it(ta: Trayagent, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """IT ships the template with the site-wide configuration; the user's file names nothing."""
    site = tmp_path / "etc" / "trayagent"
    (site / "templates").mkdir(parents=True)
    (site / "templates" / "tomcat.toml").write_text(TEMPLATE_TOML)
    (site / "config.toml").write_text('[dataset]\ntemplate = "tomcat"\n')
    monkeypatch.setenv("TRAYAGENT_SITE_CONFIG", str(site / "config.toml"))
    make_nexus(tmp_path / "run" / "scan.nxs")
    proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "run", "--dry-run", timeout=60)
    assert proc.returncode == 2 and "template 'tomcat'" in proc.stderr and "sample_name: required" in proc.stderr
    proc = ta.run("upload", str(tmp_path / "run"), "--dataset", "run", "--dry-run", "--metadata", "sample_name=Si",
                  timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_rerun_with_new_values_shows_them_and_keeps_the_harvested(beamline: Trayagent, tmp_path: Path) -> None:
    """The same folder sent again into the same dataset with corrected values: the local catalogue and
    the RO-Crate manifest beside the data show the latest run's; what was read from the files stays."""
    src = tmp_path / "run8"
    make_nexus(src / "scan_001.nxs", energy_kev=12.0)
    code, first = beamline.upload_json(str(src), "--dataset", "run8", "--keyword", "tomograpy", "--description",
                                       "first try", "--investigation-description", "Si", "--metadata",
                                       "sample_name=Si-17", "--metadata", "detector_distance=120 mm", timeout=120)
    assert code == 0 and first["files_ok"] == 1, first
    code, again = beamline.upload_json(str(src), "--dataset", "run8", "--keyword", "tomography", "--description",
                                       "Ge wafer", "--investigation-description", "Ge", "--metadata",
                                       "sample_name=Ge-4", "--metadata", "energy=25 keV", timeout=120)
    assert code == 0 and again["catalogue_id"] == first["catalogue_id"], again
    [row] = beamline.catalogue_datasets()
    assert json.loads(row["keywords"]) == ["tomography"]
    assert (row["description"], row["investigation_description"]) == ("Ge wafer", "Ge")
    meta = json.loads(row["metadata"])
    harvested = meta.pop("harvested")
    assert meta == {"sample_name": {"value": "Ge-4", "unit": ""}, "energy": {"value": 25, "unit": "keV"},
                    "temperature": {"value": 295, "unit": "K"}}, "the latest run's entries, and only those"
    assert harvested["energy"] == {"value": 12, "unit": "keV"} and harvested["files_harvested"]["value"] == 1
    crate = json.loads(next(beamline.storage_dir.rglob("ro-crate-metadata.json")).read_text())
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["./"]["description"] == "Ge wafer" and graph["./"]["keywords"] == "tomography"
    assert graph["#meta-sample_name"]["value"] == "Ge-4" and "#meta-detector_distance" not in graph
    assert graph["#harvested-energy"]["value"] == 12
