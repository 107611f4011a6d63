"""Metadata without servers: parsing what the user gives, templates, aggregation, the extractors on
real files made with h5py and tifffile, the harvester's budgets, and the RO-Crate PropertyValues."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from metafiles import TEMPLATE_TOML, make_nexus, make_tiff

from trayagent.errors import ConfigError
from trayagent.metadata import harvest
from trayagent.metadata.aggregate import Aggregate
from trayagent.metadata.extractors import NexusExtractor, TiffExtractor
from trayagent.metadata.harvest import Harvester
from trayagent.metadata.model import parse_assignment, read_metadata_file
from trayagent.metadata.templates import load_template, resolve_template
from trayagent.pipeline.manifest import build_ro_crate


# -- what the user gives --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "key", "value", "unit"), [
    ("energy=12.4 keV", "energy", 12.4, "keV"),
    ("frames=1800", "frames", 1800, ""),
    ("sample=silicon wafer", "sample", "silicon wafer", ""),  # no number: all of it is the value
    ('label="12 keV"', "label", "12 keV", ""),  # quoted: text, not a number with a unit
    ("t = -1e-3 s", "t", -0.001, "s"),
    ("empty=", "empty", "", ""),
])
def test_assignment(text: str, key: str, value: Any, unit: str) -> None:
    assert parse_assignment(text) == (key, {"value": value, "unit": unit})


@pytest.mark.parametrize("text", ["energy", "=5", "harvested=1", "trayagent=x"])
def test_bad_assignment_names_the_problem(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_assignment(text)
    assert err.value.field == "metadata" and err.value.exit_code == 2


def test_metadata_files_json_and_toml(tmp_path: Path) -> None:
    j = tmp_path / "m.json"
    j.write_text(json.dumps({"energy": {"value": 12.4, "unit": "keV"}, "sample": "Si"}))
    t = tmp_path / "m.toml"
    t.write_text('sample = "Si"\nwhen = 2026-01-23\n[energy]\nvalue = 12.4\nunit = "keV"\n')
    expected = {"energy": {"value": 12.4, "unit": "keV"}, "sample": {"value": "Si", "unit": ""}}
    assert read_metadata_file(j) == expected
    assert read_metadata_file(t) == {**expected, "when": {"value": "2026-01-23", "unit": ""}}
    bad = tmp_path / "bad.toml"
    bad.write_text("energy = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_metadata_file(bad)
    with pytest.raises(ConfigError, match="cannot be read"):
        read_metadata_file(tmp_path / "missing.json")


# -- templates ------------------------------------------------------------------------------------
@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "tomcat.toml").write_text(TEMPLATE_TOML)
    return tmp_path


def test_toml_form_becomes_a_json_schema_with_units_defaults_and_required(template_dir: Path) -> None:
    t = resolve_template("tomcat", [template_dir / "elsewhere", template_dir])
    assert t is not None and t.name == "tomcat"
    assert t.schema["required"] == ["sample_name"]
    assert t.schema["properties"]["detector"]["enum"] == ["pco.edge 5.5", "GigaFRoST"]
    fields = {f["key"]: f for f in t.fields()}
    assert (fields["energy"]["unit"], fields["energy"]["default"], fields["energy"]["required"]) == ("keV", 20.0, False)
    assert fields["sample_name"]["required"] and fields["sample_name"]["title"] == "Sample name"
    assert t.defaults() == {"energy": {"value": 20.0, "unit": "keV"}, "temperature": {"value": 295, "unit": "K"}}


def test_template_check_names_every_field_at_fault(template_dir: Path) -> None:
    t = load_template(template_dir / "templates" / "tomcat.toml")
    values = t.coerce({**t.defaults(), "energy": {"value": "70", "unit": ""},
                       "detector": {"value": "eiger", "unit": ""}, "temperature": {"value": 77, "unit": "C"}})
    assert t.problems(values) == {"sample_name": "required: give a value", "energy": "at most 60",
                                  "detector": "one of pco.edge 5.5, GigaFRoST",
                                  "temperature": "unit 'C' given; the template wants 'K'"}
    with pytest.raises(ConfigError) as err:
        t.check(values)
    assert err.value.field == "metadata.sample_name"  # a missing required field first
    assert "sample_name: required" in err.value.message
    good = t.coerce({**t.defaults(), "sample_name": {"value": 17, "unit": ""}, "energy": {"value": "12.5", "unit": ""}})
    t.check(good)
    assert good["sample_name"]["value"] == "17" and good["energy"] == {"value": 12.5, "unit": "keV"}


def test_json_schema_template_and_bad_templates(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"dose": {"type": "number", "unit": "Gy"}}, "required": ["dose"]}
    (tmp_path / "dose.json").write_text(json.dumps(schema))
    t = resolve_template(str(tmp_path / "dose.json"), [])
    assert t is not None and t.fields()[0]["unit"] == "Gy" and t.required == ["dose"]
    (tmp_path / "broken.json").write_text(json.dumps({"type": "objekt"}))
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        resolve_template(str(tmp_path / "broken.json"), [])
    with pytest.raises(ConfigError, match="no template 'nothere'"):
        resolve_template("nothere", [tmp_path])
    (tmp_path / "form.toml").write_text('[fields.x]\ntype = "complex"\n')
    with pytest.raises(ConfigError, match="type 'complex'"):
        resolve_template(str(tmp_path / "form.toml"), [])


# -- aggregation ----------------------------------------------------------------------------------
def test_aggregate_keeps_ranges_and_sets_not_copies() -> None:
    agg = Aggregate()
    for i in range(50):
        agg.add_file({"start_time": {"value": f"2026-01-23T10:{i:02d}:00+01:00"},
                      "end_time": {"value": f"2026-01-23T10:{i:02d}:30+01:00"},
                      "energy": {"value": 10 + i / 10, "unit": "keV"}, "instruments": {"value": ["TOMCAT"]},
                      "detectors": {"value": ["pco", "eiger"] if i % 2 else ["pco"]},
                      "frame": {"value": f"f{i}"}})
    s = agg.summary()
    assert s["start_time"]["value"] == "2026-01-23T10:00:00+01:00"
    assert s["end_time"]["value"] == "2026-01-23T10:49:30+01:00"
    assert s["energy"] == {"value": [10, 14.9], "unit": "keV"}
    assert s["instruments"]["value"] == ["TOMCAT"] and s["detectors"]["value"] == ["eiger", "pco"]
    assert len(s["frame"]["value"]) == 20 and s["frame"]["more"] == 30  # bounded, with a count of the rest
    assert s["files_harvested"]["value"] == 50
    again = Aggregate.from_summary(json.loads(json.dumps(s)))  # as stored in and read from a catalogue
    again.add_file({"energy": {"value": 9.5, "unit": "keV"}})
    assert again.summary()["energy"]["value"] == [9.5, 14.9] and again.files == 51


# -- extractors on real files ---------------------------------------------------------------------
def test_nexus_extractor_reads_the_nxentry(tmp_path: Path) -> None:
    got = NexusExtractor()(make_nexus(tmp_path / "scan.nxs"))
    assert got["energy"] == {"value": 21.5, "unit": "keV"}
    assert got["wavelength"]["unit"] == "angstrom" and got["wavelength"]["value"] == pytest.approx(0.57667, 1e-4)
    assert {k: got[k]["value"] for k in ("start_time", "end_time", "title", "definition", "source", "sample")} == {
        "start_time": "2026-01-23T10:00:00+01:00", "end_time": "2026-01-23T10:30:00+01:00",
        "title": "Si wafer tomography", "definition": "NXtomo", "source": "Swiss Light Source", "sample": "Si-17"}
    assert got["instruments"]["value"] == ["TOMCAT"] and got["detectors"]["value"] == ["pco.edge 5.5"]


def test_tiff_extractor_reads_tags(tmp_path: Path) -> None:
    got = TiffExtractor()(make_tiff(tmp_path / "a.tif", width=100, height=30, dtype="uint8", exposure_s=0.5))
    assert got["image_width"] == {"value": 100, "unit": "pixel"} and got["image_height"]["value"] == 30
    assert got["bit_depth"] == {"value": 8, "unit": "bit"} and got["exposure_time"] == {"value": 0.5, "unit": "s"}
    assert got["camera_make"]["value"] == "PCO" and got["software"]["value"] == "acquire 1.2"
    assert got["start_time"]["value"].startswith("2026-01-23T10:00:00")


# -- the harvester's budgets ----------------------------------------------------------------------
def _files(*paths: Path) -> list[Any]:
    return [SimpleNamespace(local_path=p, src_rel=p.name) for p in paths]


class _Hangs:
    name, suffixes = "hangs", (".raw",)

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, path: Path) -> dict[str, Any]:
        self.release.wait(60)
        return {"never": 1}


class _Raises:
    name, suffixes = "raises", (".raw",)

    def __call__(self, path: Path) -> dict[str, Any]:
        raise RuntimeError("plugin bug")


def test_corrupt_hdf5_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = make_nexus(tmp_path / "good.h5", energy_kev=12.0)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0garbage" * 100)
    h = Harvester(lambda: [NexusExtractor()], seconds=10)
    caplog.set_level(logging.WARNING)
    h.submit(1, _files(bad, good))
    assert h.drain(1, 30)
    summary = h.take(1)
    assert summary is not None and summary["energy"]["value"] == 12 and summary["files_harvested"]["value"] == 1
    assert any("bad.h5" in r.message and "'nexus' cannot read" in r.message for r in caplog.records)


def test_hanging_and_raising_extractors_are_abandoned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hangs = _Hangs()
    files = []
    for i in range(5):
        files.append(tmp_path / f"f{i}.raw")
        files[-1].write_bytes(b"x")
    h = Harvester(lambda: [hangs, _Raises()], seconds=0.3)
    caplog.set_level(logging.WARNING)
    began = time.monotonic()
    h.submit(7, _files(*files))
    assert h.drain(7, 20)
    took = time.monotonic() - began
    hangs.release.set()
    assert took < 3, f"three 0.3 s hangs, then the extractor is left out: {took:.1f} s"
    assert h.take(7) is None  # nothing harvested, nothing made up
    text = caplog.text
    assert text.count("took longer than") == 3 and "not used again" in text
    assert text.count("'raises' cannot read") == 5 and "plugin bug" in text


def test_size_budget_and_drain_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    big = make_tiff(tmp_path / "big.tif", width=2000, height=1000)
    h = Harvester(lambda: [TiffExtractor()], seconds=5, max_bytes=1_000_000)
    caplog.set_level(logging.WARNING)
    h.submit(1, _files(big))
    assert h.drain(1, 10) and h.take(1) is None
    assert "over the 1000000-byte budget" in caplog.text
    slow = _Hangs()
    h2 = Harvester(lambda: [slow], seconds=30)
    (tmp_path / "s.raw").write_bytes(b"x")
    h2.submit(2, _files(tmp_path / "s.raw"))
    assert not h2.drain(2, 0.3)  # the end of a dataset does not wait for ever
    slow.release.set()


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class _Records:
    """Notes the CPU priority of its set-up and of each read; the first read waits for ``gate``."""

    name, suffixes = "records", (".raw",)

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.prepared: list[int] = []
        self.read: list[int] = []

    def prepare(self) -> None:
        self.prepared.append(_nice())

    def __call__(self, path: Path) -> dict[str, Any]:
        self.read.append(_nice())
        self.gate.wait(10)
        return {"frames": 1}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_end_of_a_dataset_reads_what_is_left_at_normal_priority(tmp_path: Path) -> None:
    """While the upload runs, files are read at nice 10 (rclone and the acquisition first); the set-up
    (imports) at normal priority; and once the end of the dataset waits, the rest at normal priority:
    on a busy machine a nice-10 thread gets a few per cent of a core, and a short upload waited 1-2 s."""
    base = _nice()
    if base >= 10:
        pytest.skip("the test runs at nice 10 or lower priority already")
    ext = _Records()
    files = [tmp_path / f"f{i}.raw" for i in range(4)]
    for f in files:
        f.write_bytes(b"x")
    h = Harvester(lambda: [ext], seconds=20)
    h.submit(1, _files(*files))
    deadline = time.monotonic() + 10
    while not ext.read and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ext.read == [10], "the first file is read in the background, at low priority"
    done: list[bool] = []
    waiting = threading.Thread(target=lambda: done.append(h.drain(1)))
    waiting.start()
    time.sleep(0.2)  # the end of the dataset waits now
    ext.gate.set()
    waiting.join(20)
    assert done == [True]
    assert ext.read == [10, base, base, base], "what was left when the end came: at normal priority"
    assert ext.prepared == [base] * 4
    summary = h.take(1)
    assert summary is not None and summary["files_harvested"]["value"] == 4
    began = time.monotonic()
    assert h.drain(1) and time.monotonic() - began < 0.05, "all read: the end does not wait"


class _Slow:
    name, suffixes = "slow", (".raw",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.read: list[str] = []

    def __call__(self, path: Path) -> dict[str, Any]:
        self.read.append(path.name)
        time.sleep(self.seconds)
        return {"frames": 1}


def _raw_files(folder: Path, n: int) -> list[Any]:
    paths = [folder / f"f{i:03d}.raw" for i in range(n)]
    for f in paths:
        f.write_bytes(b"x")
    return _files(*paths)


def test_the_end_reads_a_short_tail_whatever_it_takes(tmp_path: Path) -> None:
    """Six files of 0.4 s left when a short upload ends: all are read (the wait is what the work needs,
    each file within its budget), not cut at a fixed 2 s."""
    h = Harvester(lambda: [_Slow(0.4)], seconds=5)
    h.submit(1, _raw_files(tmp_path, 6))
    assert h.drain(1)
    summary = h.take(1)
    assert summary is not None and summary["files_harvested"]["value"] == 6


def test_the_end_does_not_wait_for_a_backlog_beyond_the_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Many files left (fast storage outpaced extraction): DRAIN_FILES more are read, newest first (the
    summary then covers both ends of the dataset, its time range above all), the rest only within 5 %
    of the upload's time; the dataset is finished with what was read."""
    monkeypatch.setattr(harvest, "DRAIN_FILES", 4, raising=False)
    slow = _Slow(0.1)
    h = Harvester(lambda: [slow], seconds=5)
    h.submit(1, _raw_files(tmp_path, 6))
    h.submit(1, _raw_files(tmp_path, 12)[6:])
    caplog.set_level(logging.WARNING)
    while not slow.read:  # the first file is being read when the upload ends
        time.sleep(0.005)
    began = time.monotonic()
    assert not h.drain(1)
    assert time.monotonic() - began < 0.9, "12 x 0.1 s: not waited for all"
    summary = h.take(1)
    assert summary is not None and 4 <= summary["files_harvested"]["value"] <= 7
    assert "not read within" in caplog.text
    assert slow.read[:4] == ["f000.raw", "f011.raw", "f010.raw", "f009.raw"]


# -- the RO-Crate -------------------------------------------------------------------------------
def test_ro_crate_lists_property_values_with_units() -> None:
    dataset = {"name": "run", "metadata": {
        "energy": {"value": 12.4, "unit": "keV"}, "sample_name": {"value": "Si", "unit": ""},
        "harvested": {"energy": {"value": [10, 21.5], "unit": "keV"}, "title": {"value": "scan", "unit": ""}}}}
    doc = build_ro_crate(dataset, [], "trayagent")
    graph = {e["@id"]: e for e in doc["@graph"]}
    root = graph["./"]
    assert {r["@id"] for r in root["variableMeasured"]} == {"#meta-energy", "#meta-sample_name",
                                                             "#harvested-energy", "#harvested-title"}
    assert graph["#meta-energy"] == {"@id": "#meta-energy", "@type": "PropertyValue", "name": "energy",
                                     "propertyID": "energy", "description": "entered by the user",
                                     "value": 12.4, "unitText": "keV"}
    h = graph["#harvested-energy"]
    assert (h["minValue"], h["maxValue"], h["unitText"], h["description"]) == (
        10, 21.5, "keV", "harvested from the data files")
