"""Extractors: read metadata from what the acquisition wrote. Built in: NeXus/HDF5 and TIFF.

An extractor is any object with ``name`` (text), ``suffixes`` (file name endings it reads, lower
case) and a call ``extractor(path) -> {key: {"value": ..., "unit": ...}}``. An optional ``prepare()``
(imports and other one-time set-up; it should return at once once done) runs before each call at
normal CPU priority, the call itself at low priority while the upload runs (``harvest``). Facilities
add theirs through the entry point group ``trayagent.extractors`` (a class is instantiated, any other object
used as it is). Built-ins whose library is missing (h5py, tifffile: the ``metadata`` extra) are left
out with one line in the log; an entry point that fails to load is logged and skipped.
"""

from __future__ import annotations

import logging
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Protocol

from .model import Entry

log = logging.getLogger(__name__)

GROUP = "trayagent.extractors"


class Extractor(Protocol):
    name: str
    suffixes: tuple[str, ...]

    def __call__(self, path: Path) -> dict[str, Entry]: ...


class NexusExtractor:
    """NeXus/HDF5 headers (h5py)."""

    name: str = "nexus"
    suffixes: tuple[str, ...] = (".nxs", ".h5", ".hdf5", ".hdf", ".nx5")

    def prepare(self) -> None:
        from . import nexus  # noqa: F401 - h5py and numpy: ~0.2 s of CPU, once

    def __call__(self, path: Path) -> dict[str, Entry]:
        from .nexus import read_nexus

        return read_nexus(path)


class TiffExtractor:
    """TIFF tags (tifffile)."""

    name: str = "tiff"
    suffixes: tuple[str, ...] = (".tif", ".tiff")

    def prepare(self) -> None:
        from . import tiff  # noqa: F401 - tifffile and numpy, once

    def __call__(self, path: Path) -> dict[str, Entry]:
        from .tiff import read_tiff

        return read_tiff(path)


def builtin_extractors() -> list[Extractor]:
    found: list[Extractor] = []
    for extractor, module in ((NexusExtractor(), "h5py"), (TiffExtractor(), "tifffile")):
        if find_spec(module) is None:
            log.info("metadata: %s files are not read (install trayagent[metadata] for %s)", extractor.name, module)
        else:
            found.append(extractor)
    return found


def plugin_extractors() -> list[Extractor]:
    from importlib.metadata import entry_points  # read only when the first file is harvested

    found: list[Extractor] = []
    for ep in entry_points(group=GROUP):
        try:
            loaded: Any = ep.load()
            extractor = loaded() if isinstance(loaded, type) else loaded
            suffixes = tuple(str(s).lower() for s in extractor.suffixes)
            if not callable(extractor) or not suffixes:
                raise TypeError("needs suffixes and a call extractor(path)")
            extractor.suffixes = suffixes
            if not getattr(extractor, "name", None):
                extractor.name = ep.name
        except Exception as exc:  # a facility's plugin must never stop an upload
            log.warning("metadata: extractor %r (%s) cannot be used: %s", ep.name, ep.value, exc)
            continue
        found.append(extractor)
    return found


def all_extractors() -> list[Extractor]:
    return builtin_extractors() + plugin_extractors()
