"""Per-dataset aggregation of harvested metadata: ranges and sets, not per-file copies.

What each file's extractors return is folded in as it arrives: ``start_time`` keeps the earliest,
``end_time`` the latest, numbers their range (per unit), text and names the set of distinct values
(at most ``MAX_DISTINCT``; past that only a count). The summary is plain entries, and a summary read
back from the catalogue folds in like any file, so a restarted agent goes on where it stopped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .model import Entry

MAX_DISTINCT = 20


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _instant(text: str) -> tuple[float, str] | None:
    """An ISO 8601 time as a sortable number; naive times are taken as UTC for the comparison only."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp(), text


class Aggregate:
    """The running summary of one dataset's harvested metadata."""

    def __init__(self) -> None:
        self.files = 0
        self._times: dict[str, tuple[float, str]] = {}
        self._ranges: dict[str, tuple[float, float, str]] = {}
        self._sets: dict[str, set[str]] = {}
        self._overflow: dict[str, int] = {}

    def add_file(self, found: dict[str, Entry]) -> None:
        self.files += 1
        self.add(found)

    def add(self, found: dict[str, Entry]) -> None:
        for key, item in found.items():
            if key == "files_harvested":
                continue
            value, unit = item.get("value"), str(item.get("unit") or "")
            if key in ("start_time", "end_time") and isinstance(value, str):
                self._time(key, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                self._range(key, float(value), float(value), unit)
            elif isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)):
                self._range(key, float(min(value)), float(max(value)), unit)
            elif isinstance(value, list):
                for v in value:
                    self._distinct(key, v)
            elif value not in (None, ""):
                self._distinct(key, value)
            if "more" in item and isinstance(item["more"], int):
                self._overflow[key] = max(self._overflow.get(key, 0), item["more"])

    def _time(self, key: str, text: str) -> None:
        got = _instant(text)
        if got is None:
            self._distinct(key, text)
            return
        old = self._times.get(key)
        if old is None or (got[0] < old[0] if key == "start_time" else got[0] > old[0]):
            self._times[key] = got

    def _range(self, key: str, low: float, high: float, unit: str) -> None:
        old = self._ranges.get(key)
        if old is not None and old[2] != unit:
            key = f"{key} ({unit})" if unit else f"{key} (no unit)"
            old = self._ranges.get(key)
        if old is None:
            self._ranges[key] = (low, high, unit)
        else:
            self._ranges[key] = (min(old[0], low), max(old[1], high), unit)

    def _distinct(self, key: str, value: Any) -> None:
        values = self._sets.setdefault(key, set())
        text = value if isinstance(value, str) else str(value)
        if text in values:
            return
        if len(values) >= MAX_DISTINCT:
            self._overflow[key] = self._overflow.get(key, 0) + 1
            return
        values.add(text)

    def summary(self) -> dict[str, Entry]:
        """Entries for the catalogue: a range is ``[min, max]``, a set a sorted list (one value alone)."""
        out: dict[str, Entry] = {}
        for key, (_, text) in self._times.items():
            out[key] = {"value": text, "unit": ""}
        for key, (low, high, unit) in self._ranges.items():
            out[key] = {"value": _number(low) if low == high else [_number(low), _number(high)], "unit": unit}
        for key, values in self._sets.items():
            ordered = sorted(values)
            out[key] = {"value": ordered[0] if len(ordered) == 1 and key not in _LISTS else ordered, "unit": ""}
            if self._overflow.get(key):
                out[key]["more"] = self._overflow[key]
        if self.files:
            out["files_harvested"] = {"value": self.files, "unit": ""}
        return dict(sorted(out.items()))

    def merge(self, other: Aggregate) -> None:
        """Fold in another aggregate (e.g. the summary an earlier run stored)."""
        self.add(other.summary())
        self.files += other.files

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Aggregate:
        agg = cls()
        items = {k: v for k, v in summary.items() if isinstance(v, dict) and k != "files_harvested"}
        agg.add(items)
        count = (summary.get("files_harvested") or {}).get("value") if isinstance(summary, dict) else 0
        agg.files = count if isinstance(count, int) else 0
        return agg


_LISTS = frozenset({"detectors", "instruments", "extractors"})  # always lists, even of one


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
