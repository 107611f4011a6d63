"""Metadata entries: ``{"value": ..., "unit": ...}``, the form SciCat's community uses.

User metadata arrives as ``KEY=VALUE[ UNIT]`` (``energy=12.4 keV``), as a JSON or TOML file, or as
the Dataset dialog's table; all of it becomes one dict of entries. A unit is read only after a
number, so ``sample=silicon wafer`` stays a text value and is not split into value and unit.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

Entry = dict[str, Any]  # {"value": ..., "unit": "keV"}; "unit" is "" for a unitless value

HARVESTED_KEY = "harvested"  # scientificMetadata.harvested: what extractors read from the files
RESERVED_KEYS = frozenset({HARVESTED_KEY, "trayagent", "investigation_description", "proposal_title"})

_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\s+(\S.*?))?\s*$")


def entry(value: Any, unit: str = "") -> Entry:
    return {"value": _plain(value), "unit": unit}


def _plain(value: Any) -> Any:
    """TOML dates and times as ISO text; everything else as JSON has it."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def parse_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def parse_value(text: str) -> Entry:
    """``12.4 keV`` -> 12.4 in keV; ``7`` -> 7; ``"12 keV"`` (quoted) and any other text -> the text."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return entry(stripped[1:-1])
    match = _NUMBER_UNIT.match(stripped)
    if match:
        number = parse_number(match.group(1))
        if number is not None:
            return entry(number, match.group(2) or "")
    return entry(stripped)


def check_key(key: str, origin: str) -> str:
    key = key.strip()
    if not key:
        raise ConfigError(f"{origin}: a metadata entry has no name", "Write KEY=VALUE, e.g. energy=12.4 keV.",
                          field="metadata")
    if key in RESERVED_KEYS:
        raise ConfigError(f"{origin}: the metadata name {key!r} is reserved for trayagent",
                          "Choose another name for this entry.", field="metadata")
    return key


def parse_assignment(text: str) -> tuple[str, Entry]:
    """``KEY=VALUE[ UNIT]`` as given on the command line."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"metadata {text!r} has no '='", "Write KEY=VALUE, e.g. energy=12.4 keV.",
                          field="metadata")
    return check_key(key, f"metadata {text!r}"), parse_value(value)


def normalise(data: Mapping[str, Any], origin: str) -> dict[str, Entry]:
    """Entries from a file or a request: ``{"value": v, "unit": u}`` objects or bare values."""
    out: dict[str, Entry] = {}
    for key, raw in data.items():
        name = check_key(str(key), origin)
        if isinstance(raw, Mapping) and "value" in raw:
            unit = raw.get("unit") or ""
            if not isinstance(unit, str):
                raise ConfigError(f"{origin}: the unit of {name!r} is not text",
                                  'Write the unit as text, e.g. "keV".', field="metadata")
            out[name] = entry(raw["value"], unit.strip())
        else:
            out[name] = entry(raw)
    return out


def read_metadata_file(path: Path) -> dict[str, Entry]:
    """A JSON or TOML file of entries (by its suffix; anything else is tried as JSON, then TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"metadata file {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})",
                          "Check the path and that it is a UTF-8 JSON or TOML file.", field="metadata") from exc
    data = _decode(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"metadata file {path}: the top level is not an object of named entries",
                          'Write e.g. {"energy": {"value": 12.4, "unit": "keV"}}.', field="metadata")
    return normalise(data, f"metadata file {path}")


def _decode(text: str, path: Path) -> Any:
    suffix = path.suffix.lower()
    tries = [_json, _toml] if suffix != ".toml" else [_toml]
    if suffix == ".json":
        tries = [_json]
    problems = []
    for decode in tries:
        try:
            return decode(text)
        except ValueError as exc:
            problems.append(str(exc))
    raise ConfigError(f"metadata file {path}: not valid {'JSON or TOML' if len(tries) > 1 else suffix[1:].upper()}"
                      f" ({problems[-1]})", "Fix the file's syntax, then try again.", field="metadata")


def _json(text: str) -> Any:
    return json.loads(text)


def _toml(text: str) -> Any:
    return tomllib.loads(text)


def merge_user(*layers: Iterable[tuple[str, Entry]]) -> dict[str, Entry]:
    """Later layers win: template defaults, then the file, then ``--metadata`` options."""
    out: dict[str, Entry] = {}
    for layer in layers:
        out.update(layer)
    return out
