"""The Dataset dialog with a beamline template, end to end: the form rendered from the template
(defaults, units, required marks), inline messages for a missing or malformed field, free entries and
keywords, and the values in the catalogue after the upload. Driven in headless Chromium and in the real
pywebview window on Xvfb; screenshots land in tests/artifacts/ for the README."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from agentctl import Trayagent
from metafiles import TEMPLATE_TOML, make_nexus
from playwright.sync_api import expect
from test_dialogs import find_window, grab, rendered, start_dialog_window, stop_dialog, xdotool
from waiting import wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def beamline(ta: Trayagent) -> Trayagent:
    (ta.home / "config" / "templates").mkdir(parents=True)
    (ta.home / "config" / "templates" / "tomcat.toml").write_text(TEMPLATE_TOML)
    ta.write_config({"dataset": {"template": "tomcat"}})
    return ta


def stored_metadata(ta: Trayagent, name: str) -> tuple[list[str], dict[str, Any]]:
    row = next(d for d in ta.catalogue_datasets() if d["name"] == name)
    return json.loads(row["keywords"]), json.loads(row["metadata"])


def test_template_form_in_the_browser(beamline: Trayagent, start_agent: Any, page: Any, tmp_path: Path,
                                      artifacts: Path) -> None:
    agent = start_agent()
    data = tmp_path / "run9"
    make_nexus(data / "scan_001.nxs", energy_kev=14.0)
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]
    page.goto(agent.url("dataset", request))
    expect(page.locator("#template-info")).to_contain_text("TOMCAT tomography")
    expect(page.locator("label[for=meta-sample_name]")).to_contain_text("Sample name *")
    expect(page.locator("label[for=meta-energy]")).to_contain_text("(keV)")
    expect(page.locator("#meta-energy")).to_have_value("20")  # the template's default
    expect(page.locator("#meta-detector option")).to_have_count(3)  # "—" and the two allowed values

    page.click("#start")  # the required field is empty: nothing is sent
    expect(page.locator("#meta-error-sample_name")).to_have_text("Required: give a value.")
    expect(page.locator("#meta-sample_name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#meta-sample_name")).to_be_focused()
    expect(page.locator("#error")).to_contain_text("Fix the marked metadata fields")
    page.fill("#meta-energy", "lots")
    page.click("#preview-button")
    expect(page.locator("#meta-error-energy")).to_have_text("A number is needed (in keV).")
    page.screenshot(path=artifacts / "dataset-metadata.png", full_page=True)
    assert agent.get("/api/status")["datasets"] == [], "nothing was started"

    page.fill("#meta-sample_name", "Si-17")
    page.fill("#meta-energy", "12.5")
    page.fill("#meta-detector_distance", "120")
    page.select_option("#meta-detector", "GigaFRoST")
    page.fill("#keywords", "tomography, SLS")
    page.click("#add-metadata")
    page.locator("#metadata-rows tr").last.locator(".meta-key").fill("ring_current")
    page.locator("#metadata-rows tr").last.locator(".meta-value").fill("400")
    page.locator("#metadata-rows tr").last.locator(".meta-unit").fill("mA")
    expect(page.locator("#meta-error-sample_name")).to_be_empty()
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("Uploading “run9”")
    wait_for(lambda: (d := agent.dataset("run9")) and d["state"] == "complete", 60, "the upload to complete")
    keywords, meta = stored_metadata(beamline, "run9")
    assert keywords == ["tomography", "SLS"]
    harvested = meta.pop("harvested")
    assert meta == {"sample_name": {"value": "Si-17", "unit": ""}, "energy": {"value": 12.5, "unit": "keV"},
                    "temperature": {"value": 295, "unit": "K"}, "detector_distance": {"value": 120.0, "unit": "mm"},
                    "detector": {"value": "GigaFRoST", "unit": ""}, "ring_current": {"value": 400, "unit": "mA"}}
    assert harvested["energy"] == {"value": 14, "unit": "keV"}


def test_agent_names_the_metadata_field_at_fault(beamline: Trayagent, start_agent: Any, tmp_path: Path) -> None:
    """The control API checks the template too (a script, or a dialog that skipped its own checks)."""
    agent = start_agent()
    (tmp_path / "d").mkdir()
    body = {"paths": [str(tmp_path / "d")], "dataset": "api", "metadata": {"energy": {"value": 3, "unit": "keV"}}}
    resp = agent._call("POST", "/api/upload", body)
    assert resp.status_code == 400
    answer = resp.json()
    assert answer["field"] == "metadata.sample_name" and "energy: at least 5" in answer["error"]
    assert agent.get("/api/template")["fields"][0]["key"] == "sample_name"


def test_template_form_in_the_pywebview_window(beamline: Trayagent, start_agent: Any, agent_env: dict[str, str],
                                               xvfb: Any, tmp_path: Path, artifacts: Path) -> None:
    """Keys typed into the real window: Enter in the (focused) name field submits, the dialog refuses and
    moves the focus to the empty required field, the sample name is typed there, Enter starts."""
    agent = start_agent()
    data = tmp_path / "win7"
    make_nexus(data / "scan_001.nxs")
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]
    proc = start_dialog_window(xvfb, agent_env, "dataset", request)
    try:
        window = find_window(xvfb, "trayagent: Dataset", proc)
        wait_for(lambda: rendered(grab(xvfb, window)), 60, "the dataset window drawn", interval=0.3)
        time.sleep(1.5)  # the template and the prefill requests answer; the name field has the focus
        xdotool(xvfb, "windowfocus", "--sync", window)
        xdotool(xvfb, "key", "--clearmodifiers", "Return")
        time.sleep(1.0)
        grab(xvfb, window).save(artifacts / "window-dataset-metadata.png")
        assert agent.get("/api/status")["datasets"] == [], "the dialog refused to start without a sample name"
        xdotool(xvfb, "type", "--delay", "20", "Fe-3")
        xdotool(xvfb, "key", "--clearmodifiers", "Return")
        wait_for(lambda: (d := agent.dataset("win7")) and d["state"] == "complete", 60, "the upload to complete")
        _, meta = stored_metadata(beamline, "win7")
        assert meta["sample_name"] == {"value": "Fe-3", "unit": ""} and meta["energy"]["unit"] == "keV"
    finally:
        stop_dialog(proc)
        if proc.stdout:
            out = proc.stdout.read().decode(errors="replace")
            if "Traceback" in out:
                print(out)
    assert os.path.exists(artifacts / "window-dataset-metadata.png")
