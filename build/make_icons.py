"""Draws trayagent's tray icons with Pillow: one per agent state, told apart by shape as well as colour.

Every icon is an upward arrow (upload) on a coloured disc; a badge in the lower right corner names the
state with a shape, so the states stay distinct for colour-blind users and on monochrome panels:

    idle        blue disc,        badge: check mark        (everything is uploaded)
    syncing     bluish-green disc, badge: circular arrow   (work in progress)
    paused      orange disc,      badge: two bars          (pause)
    error       vermillion disc,  badge: exclamation mark  (look at Activity)
    logged-out  grey disc,        badge: padlock           (log in to go on)

Colours are from the Okabe-Ito palette. Writes ``trayagent/icons/<state>.png`` (64x64, what the tray
loads at run time; package data) and ``.ico`` (16-256 px, the Windows tray and installer), plus copies
and 256 px versions in ``assets/``. Run from anywhere: ``python3 build/make_icons.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
SCALE = 8           # draw at 8x and downsample: smooth edges without an antialiasing library
SIZE = 64
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]

STATES = {
    "idle": (0, 114, 178),        # blue
    "syncing": (0, 158, 115),     # bluish green
    "paused": (230, 159, 0),      # orange
    "error": (213, 94, 0),        # vermillion
    "logged-out": (120, 120, 120),  # grey
}
INK = (20, 20, 20, 255)
WHITE = (255, 255, 255, 255)


def _arrow(d: ImageDraw.ImageDraw, s: float) -> None:
    """The upload arrow, in the upper left two thirds so the badge does not cover it."""
    cx, top = 27 * s, 9 * s
    d.polygon([(cx, top), (cx + 15 * s, top + 16 * s), (cx + 6 * s, top + 16 * s), (cx + 6 * s, 44 * s),
               (cx - 6 * s, 44 * s), (cx - 6 * s, top + 16 * s), (cx - 15 * s, top + 16 * s)], fill=WHITE)


def _badge(d: ImageDraw.ImageDraw, s: float, state: str) -> None:
    cx, cy, r = 47 * s, 47 * s, 15 * s
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=WHITE, outline=INK, width=int(2 * s))
    w = int(4 * s)
    if state == "idle":        # check mark
        d.line([(cx - 8 * s, cy), (cx - 2 * s, cy + 6 * s), (cx + 8 * s, cy - 6 * s)], fill=INK, width=w,
               joint="curve")
    elif state == "syncing":   # circular arrow
        r2 = 8 * s
        d.arc([cx - r2, cy - r2, cx + r2, cy + r2], start=40, end=330, fill=INK, width=w)
        tip = (cx + r2 * 0.77, cy - r2 * 0.64)
        d.polygon([(tip[0] - 6 * s, tip[1] - 4 * s), (tip[0] + 5 * s, tip[1] - 5 * s), (tip[0] + 1 * s, tip[1] + 6 * s)],
                  fill=INK)
    elif state == "paused":    # two bars
        for x in (cx - 5 * s, cx + 2 * s):
            d.rectangle([x, cy - 7 * s, x + 3.5 * s, cy + 7 * s], fill=INK)
    elif state == "error":     # exclamation mark
        d.rectangle([cx - 2 * s, cy - 9 * s, cx + 2 * s, cy + 3 * s], fill=INK)
        d.ellipse([cx - 2.5 * s, cy + 5 * s, cx + 2.5 * s, cy + 10 * s], fill=INK)
    elif state == "logged-out":  # padlock
        d.arc([cx - 5 * s, cy - 10 * s, cx + 5 * s, cy + 2 * s], start=180, end=360, fill=INK, width=int(3 * s))
        d.line([(cx - 5 * s, cy - 4 * s), (cx - 5 * s, cy - 1 * s)], fill=INK, width=int(3 * s))
        d.line([(cx + 5 * s, cy - 4 * s), (cx + 5 * s, cy - 1 * s)], fill=INK, width=int(3 * s))
        d.rounded_rectangle([cx - 8 * s, cy - 2 * s, cx + 8 * s, cy + 9 * s], radius=2 * s, fill=INK)
    else:
        raise ValueError(state)


def draw(state: str, size: int = SIZE) -> Image.Image:
    s = SCALE * size / SIZE
    img = Image.new("RGBA", (int(64 * s), int(64 * s)), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse([1 * s, 1 * s, 63 * s, 63 * s], fill=STATES[state] + (255,), outline=INK, width=int(1.5 * s))
    _arrow(d, s)
    _badge(d, s, state)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    package, assets = ROOT / "trayagent" / "icons", ROOT / "assets"
    package.mkdir(exist_ok=True)
    assets.mkdir(exist_ok=True)
    for state in STATES:
        draw(state).save(package / f"{state}.png", optimize=True)
        draw(state, 256).save(package / f"{state}.ico", sizes=ICO_SIZES)
        draw(state, 256).save(assets / f"{state}-256.png", optimize=True)
        for suffix in (".png", ".ico"):
            shutil.copyfile(package / f"{state}{suffix}", assets / f"{state}{suffix}")
    # the application icon (launcher, notifications, installer) is the idle one
    shutil.copyfile(package / "idle.png", package / "trayagent.png")
    shutil.copyfile(package / "idle.ico", package / "trayagent.ico")
    shutil.copyfile(assets / "idle-256.png", assets / "trayagent-256.png")
    strip = Image.new("RGBA", (SIZE * len(STATES) + 8 * (len(STATES) - 1), SIZE), (255, 255, 255, 0))
    for i, state in enumerate(STATES):
        strip.paste(draw(state), (i * (SIZE + 8), 0))
    strip.save(assets / "overview.png")
    print(f"wrote {len(STATES)} states to {package} and {assets}")


if __name__ == "__main__":
    main()
