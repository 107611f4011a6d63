"""Real data files for the metadata tests: NeXus/HDF5 written with h5py (an NXentry with instrument,
source, monochromator, detector and sample, with units) and TIFF written with tifffile."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import tifffile


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def make_nexus(path: Path, *, energy_kev: float = 21.5, start: str = "2026-01-23T10:00:00+01:00",
               end: str = "2026-01-23T10:30:00+01:00", sample: str = "Si-17", detector: str = "pco.edge 5.5",
               title: str = "Si wafer tomography") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = _group(f, "entry", "NXentry")
        entry["start_time"], entry["end_time"], entry["title"], entry["definition"] = start, end, title, "NXtomo"
        inst = _group(entry, "instrument", "NXinstrument")
        inst["name"] = "TOMCAT"
        _group(inst, "source", "NXsource")["name"] = "Swiss Light Source"
        mono = _group(inst, "monochromator", "NXmonochromator")
        mono["energy"] = energy_kev
        mono["energy"].attrs["units"] = "keV"
        mono["wavelength"] = 12.398419843320026 / energy_kev
        mono["wavelength"].attrs["units"] = "angstrom"
        det = _group(inst, "detector", "NXdetector")
        det["local_name"] = detector
        det.create_dataset("data", data=np.zeros((4, 32, 32), dtype="u2"))
        _group(entry, "sample", "NXsample")["name"] = sample
    return path


def make_tiff(path: Path, *, width: int = 128, height: int = 64, dtype: str = "uint16", exposure_s: float = 0.25,
              when: str = "2026:01:23 10:00:00") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((height, width), dtype=dtype), description=f"exposure={exposure_s} s",
                     datetime=when, software="acquire 1.2", metadata=None,
                     extratags=[(271, "s", 0, "PCO", True), (272, "s", 0, "edge 5.5", True)])
    return path


TEMPLATE_TOML = """title = "TOMCAT tomography"
[fields.sample_name]
title = "Sample name"
type = "string"
required = true
[fields.energy]
title = "Energy"
type = "number"
unit = "keV"
default = 20.0
minimum = 5
maximum = 60
[fields.temperature]
title = "Temperature"
type = "number"
unit = "K"
default = 295
[fields.detector_distance]
title = "Detector distance"
type = "number"
unit = "mm"
[fields.detector]
title = "Detector"
type = "string"
allowed = ["pco.edge 5.5", "GigaFRoST"]
"""
