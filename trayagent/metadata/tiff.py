"""TIFF: image size, bit depth, exposure and the standard descriptive tags (tifffile; tags only, no
pixel is read). The acquisition time (DateTime, ``YYYY:MM:DD HH:MM:SS``, local time) counts as the
file's start and end time."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import tifffile

from .model import Entry, entry

_EXPOSURE = re.compile(r"exposure(?:[ _]?time)?\s*[=:]\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(ms|s|us|µs)?", re.I)
_TEXT_TAGS = (("Make", "camera_make"), ("Model", "camera_model"), ("Software", "software"), ("Artist", "artist"))


def _tag(page: Any, name: str) -> Any:
    tag = page.tags.get(name)
    return None if tag is None else tag.value


def _exposure(page: Any) -> Entry | None:
    exif = _tag(page, "ExifTag")
    if isinstance(exif, dict) and "ExposureTime" in exif:
        value = exif["ExposureTime"]
        if isinstance(value, tuple) and len(value) == 2 and value[1]:
            return entry(value[0] / value[1], "s")
        if isinstance(value, (int, float)):
            return entry(float(value), "s")
    description = _tag(page, "ImageDescription")
    if isinstance(description, str):
        match = _EXPOSURE.search(description)
        if match:
            return entry(float(match.group(1)), (match.group(2) or "s").replace("us", "µs"))
    return None


def _time(page: Any) -> str | None:
    """DateTime, written in the acquisition computer's local time: given this computer's offset
    (the uploader runs at the beamline), so it compares with NeXus times that carry theirs."""
    value = _tag(page, "DateTime")
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.strptime(value.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return when.astimezone().isoformat()


def read_tiff(path: Path) -> dict[str, Entry]:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        pages = len(tif.pages)
        out: dict[str, Entry] = {
            "image_width": entry(int(page.imagewidth), "pixel"),
            "image_height": entry(int(page.imagelength), "pixel"),
            "bit_depth": entry(int(page.bitspersample), "bit"),
            "samples_per_pixel": entry(int(page.samplesperpixel)),
            "pages": entry(pages),
            "compression": entry(str(getattr(page.compression, "name", page.compression)).lower()),
        }
        exposure = _exposure(page)
        if exposure:
            out["exposure_time"] = exposure
        when = _time(page)
        if when:
            out["start_time"] = out["end_time"] = entry(when)
        for tag, key in _TEXT_TAGS:
            value = _tag(page, tag)
            if isinstance(value, str) and value.strip():
                out[key] = entry(value.strip())
    return out
