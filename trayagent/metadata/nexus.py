"""NeXus/HDF5: what an NXentry says about the measurement (h5py, headers only; no data is read).

Per NXentry: ``start_time``, ``end_time``, ``title``, ``definition``, the instrument's and the
source's names, the sample's name, the wavelength or energy with its ``units`` attribute (looked for
in the beam, monochromator and source), and the names of the NXdetector groups. Large arrays give
their range only when they are small enough to read cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .model import Entry, entry

MAX_ARRAY = 100_000  # elements: a bigger array is data, not metadata
_BEAMLIKE = ("NXbeam", "NXmonochromator", "NXsource")
_WAVE = ("incident_wavelength", "wavelength")
_ENERGY = ("incident_energy", "energy")


def _nx_class(obj: Any) -> str:
    value = obj.attrs.get("NX_class", b"")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _groups(group: h5py.Group) -> dict[str, list[tuple[str, h5py.Group]]]:
    """The subgroups of ``group`` by NX_class, in one pass that opens no dataset (opening each
    object through ``items()`` cost most of the time per file)."""
    found: dict[str, list[tuple[str, h5py.Group]]] = {}
    for name in group:
        if group.get(name, getclass=True) is h5py.Group:
            sub = group[name]
            found.setdefault(_nx_class(sub), []).append((name, sub))
    return found


def _value(ds: Any) -> Any:
    """A dataset's value as plain Python: text, a number, or [min, max] of a small numeric array."""
    if not isinstance(ds, h5py.Dataset) or ds.size == 0 or ds.size > MAX_ARRAY:
        return None
    raw = ds[()]
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").strip()
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind in "SUO":
            items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in raw.ravel()]
            return items[0].strip() if len(items) == 1 else None
        if raw.dtype.kind in "iuf":
            flat = raw.ravel()
            low, high = flat.min().item(), flat.max().item()
            return low if low == high else [low, high]
        return None
    if isinstance(raw, np.generic):
        return raw.item()
    return raw if isinstance(raw, (str, int, float)) else None


def _units(ds: Any) -> str:
    unit = ds.attrs.get("units", b"") if isinstance(ds, h5py.Dataset) else ""
    return (unit.decode("utf-8", "replace") if isinstance(unit, bytes) else str(unit)).strip()


def _field(group: h5py.Group, name: str) -> Any:
    return _value(group.get(name)) if name in group else None


def _put(out: dict[str, Entry], key: str, ds: Any) -> None:
    value = _value(ds)
    if value not in (None, "") and key not in out:
        out[key] = entry(value, _units(ds))


def _beam(groups: dict[str, list[tuple[str, h5py.Group]]], out: dict[str, Entry]) -> None:
    """Wavelength and energy, with units, from beam, monochromator and source groups."""
    for kind in _BEAMLIKE:
        for _, group in groups.get(kind, []):
            for key, names in (("wavelength", _WAVE), ("energy", _ENERGY)):
                for name in names:
                    if name in group:
                        _put(out, key, group[name])


def _instrument(inst: h5py.Group, out: dict[str, Entry]) -> None:
    if "name" in inst:
        _put(out, "instrument", inst["name"])
    groups = _groups(inst)
    for _, source in groups.get("NXsource", []):
        if "name" in source:
            _put(out, "source", source["name"])
    _beam(groups, out)
    detectors = []
    for key, det in groups.get("NXdetector", []):
        label = _field(det, "local_name") or _field(det, "description")
        detectors.append(label if isinstance(label, str) and label else key)
    if detectors:
        out["detectors"] = entry(sorted(set(detectors)))


def _entry(group: h5py.Group) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for key in ("start_time", "end_time", "title", "definition"):
        if key in group:
            _put(out, key, group[key])
    groups = _groups(group)
    for _, inst in groups.get("NXinstrument", []):
        _instrument(inst, out)
    for _, sample in groups.get("NXsample", []):
        if "name" in sample:
            _put(out, "sample", sample["name"])
    _beam(groups, out)  # entry-level beam groups (some writers put them here)
    return out


def read_nexus(path: Path) -> dict[str, Entry]:
    """Every NXentry's facts, merged (the aggregation downstream keeps ranges and sets)."""
    found: dict[str, Entry] = {}
    lists: dict[str, set[str]] = {}
    with h5py.File(path, "r") as f:
        top = _groups(f)
        entries = top.get("NXentry") or [g for groups in top.values() for g in groups][:1]
        for _, group in entries:
            for key, item in _entry(group).items():
                if isinstance(item["value"], list) and key == "detectors":
                    lists.setdefault(key, set()).update(item["value"])
                else:
                    found.setdefault(key, item)
    for key, values in lists.items():
        found[key] = entry(sorted(values))
    if "instrument" in found:
        found["instruments"] = entry([str(found.pop("instrument")["value"])])
    return found
