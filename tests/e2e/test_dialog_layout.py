"""The dialogs' buttons stay whole and clickable at every size a person gives the window: the size the
dialog opens at, a small laptop window, and the smallest size the window allows (issue 19: "the Open
Activity button is clipped").

A button counts as usable when its whole box lies inside the window and a click at the middle of each
of its edges and at its centre lands on the button itself
(not on a scrolled panel or a neighbour in the sticky footer).
Headless Chromium draws the pages; the real pywebview window's size on a small screen is checked too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from test_dialogs import find_window, grab, rendered, start_dialog_window, stop_dialog, xdotool
from virtualdisplay import start_xvfb
from waiting import stop_process, wait_for

from trayagent.ui.dialogs import MIN_SIZE, SIZES, TITLES, fit_to_screen

pytestmark = pytest.mark.timeout(300)

AgentProcess = Any

# (width, height): the dialog's own size, a small laptop window, the window's minimum
VIEWPORTS = [SIZES["dataset"], (520, 420), MIN_SIZE]

UNUSABLE = """
(el) => {
  const r = el.getBoundingClientRect();
  const problems = [];
  if (r.width === 0 || r.height === 0) return ["not drawn"];
  if (r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight)
    problems.push(`box ${Math.round(r.left)},${Math.round(r.top)}-${Math.round(r.right)},${Math.round(r.bottom)}`
                  + ` outside the ${innerWidth}x${innerHeight} window`);
  const inset = 2, cx = r.left + r.width / 2, cy = r.top + r.height / 2;  // edges' middles: corners are round
  const points = [[cx, cy], [r.left + inset, cy], [r.right - inset, cy], [cx, r.top + inset], [cx, r.bottom - inset]];
  for (const [x, y] of points) {
    const hit = document.elementFromPoint(x, y);
    if (hit !== el && !el.contains(hit))
      problems.push(`at ${Math.round(x)},${Math.round(y)} the click lands on ` +
                    (hit ? hit.tagName + (hit.id ? "#" + hit.id : "") : "nothing"));
  }
  return problems;
}
"""

WIDER_THAN_WINDOW = """() => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
  .map(e => e.tagName + (e.id ? "#" + e.id : "") + " " + Math.round(e.getBoundingClientRect().width) + " px wide")"""


def wider_than_window(page: Any) -> list[str]:
    """What makes the page scroll sideways (nothing, on a page laid out for the window)."""
    return list(page.evaluate(WIDER_THAN_WINDOW)) if page.evaluate(
        "document.documentElement.scrollWidth > innerWidth") else []


FOOTER_ROWS = """() => {
  const footer = document.querySelector("form > .buttons, main > .buttons");
  const tops = [...footer.querySelectorAll("button")].filter(b => b.offsetParent !== null)
    .map(b => Math.round(b.getBoundingClientRect().top));
  return {height: Math.round(footer.getBoundingClientRect().height), tops};
}"""
FOOTER_MAX_HEIGHT = 60  # one row of buttons and the footer's padding: 49 px; two rows: 92 px


def footer_rows(page: Any) -> dict[str, Any]:
    """The sticky footer's height and the top of each of its visible buttons."""
    return dict(page.evaluate(FOOTER_ROWS))


def footer_problems(page: Any) -> dict[str, list[str]]:
    buttons = page.locator(".buttons button:visible")
    out: dict[str, list[str]] = {}
    for i in range(buttons.count()):
        button = buttons.nth(i)
        problems = button.evaluate(UNUSABLE)
        if problems:
            out[button.inner_text()] = problems
    return out


@pytest.mark.parametrize("size", VIEWPORTS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dataset_footer_whole_after_start(size: tuple[int, int], agent: AgentProcess, page: Any,
                                          tmp_path: Path, artifacts: Path) -> None:
    """After Start, the footer holds Open Activity, Cancel, Preview and Start: all whole, at each size,
    with a preview table long enough to scroll behind the footer."""
    data = tmp_path / "run-layout"
    for i in range(40):
        (data / f"scan_{i:04d}_with_a_long_detector_name.h5").parent.mkdir(parents=True, exist_ok=True)
        (data / f"scan_{i:04d}_with_a_long_detector_name.h5").write_bytes(b"x" * (100 + i))
    request = agent.post("/api/open", {"paths": [str(data)]})["request"]
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(agent.url("dataset", request))
    expect(page.locator("#paths li")).to_have_count(1)
    page.click("#preview-button")
    expect(page.locator("#preview-rows tr")).to_have_count(40)
    page.click("#start")
    expect(page.locator("#open-activity")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("run-layout")

    for scroll in ("top", "bottom"):  # the footer is sticky: whole wherever the form is scrolled to
        page.evaluate("where => window.scrollTo(0, where === 'top' ? 0 : document.body.scrollHeight)", scroll)
        page.screenshot(path=artifacts / f"dataset-footer-{size[0]}x{size[1]}-{scroll}.png")
        assert page.locator(".buttons button:visible").count() == 4
        problems = footer_problems(page)
        assert not problems, f"at {size[0]}x{size[1]}, scrolled to the {scroll}: {problems}"
    # one row, so the footer leaves the form room even at the minimum size (a wrapped one took 92 of 300 px)
    rows = footer_rows(page)
    assert max(rows["tops"]) - min(rows["tops"]) <= 2, f"at {size[0]}x{size[1]} the footer wraps: {rows}"
    assert rows["height"] <= FOOTER_MAX_HEIGHT, f"at {size[0]}x{size[1]} the footer is too high: {rows}"
    assert not wider_than_window(page), f"the page scrolls sideways: {wider_than_window(page)}"

    # a narrow window shows just "Activity"; the name a screen reader reads (and a tooltip) stays the same
    page.get_by_role("button", name="Open Activity").click()  # it does what it says: Activity is shown
    expect(page.locator("#error")).to_be_empty()


@pytest.mark.parametrize("name", ["activity", "login", "settings"])
def test_other_dialogs_footer_whole_at_minimum(name: str, agent: AgentProcess, page: Any) -> None:
    page.set_viewport_size({"width": MIN_SIZE[0], "height": MIN_SIZE[1]})
    page.goto(agent.url(name))
    expect(page.locator("h1")).to_be_visible()
    page.wait_for_timeout(500)  # the first API answers fill the page
    for scroll in ("top", "bottom"):
        page.evaluate("where => window.scrollTo(0, where === 'top' ? 0 : document.body.scrollHeight)", scroll)
        problems = footer_problems(page)
        assert not problems, f"{name}, scrolled to the {scroll}: {problems}"
    rows = footer_rows(page)
    assert max(rows["tops"]) - min(rows["tops"]) <= 2, f"{name}: the footer wraps: {rows}"
    assert rows["height"] <= FOOTER_MAX_HEIGHT, f"{name}: the footer is too high: {rows}"
    assert not wider_than_window(page), f"{name} scrolls sideways: {wider_than_window(page)}"


def test_pywebview_window_fits_small_screen(agent: AgentProcess, agent_env: dict[str, str], tmp_path: Path,
                                            artifacts: Path) -> None:
    """On a 1024x600 screen (a netbook, a beamline PC's small monitor) the 760 px high dataset window
    opens shorter than the screen, so its buttons are not below the screen's edge."""
    xvfb = start_xvfb("1024x600x24")  # a display of its own: the session's is 1280x800
    try:
        request = agent.post("/api/open", {"paths": [str(tmp_path)]})["request"]
        proc = start_dialog_window(xvfb, agent_env, "dataset", request)
        try:
            window = find_window(xvfb, TITLES["dataset"], proc)
            wait_for(lambda: rendered(grab(xvfb, window)), 60, "the dataset window drawn", interval=0.3)
            grab(xvfb, window).save(artifacts / "window-dataset-1024x600.png")
            geo = dict(line.split("=", 1) for line in xdotool(xvfb, "getwindowgeometry", "--shell", window).split())
            width, height = int(geo["WIDTH"]), int(geo["HEIGHT"])
            assert (width, height) == fit_to_screen(SIZES["dataset"], [(1024, 600)]), geo
            assert height <= 600 - 100
        finally:
            stop_dialog(proc)
    finally:
        stop_process(xvfb.proc, 10)

