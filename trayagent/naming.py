"""Safe storage names: a dataset called ``../../etc`` must land inside the storage root, not above it."""

from __future__ import annotations

import re
import unicodedata

from .errors import ConfigError

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def sanitise_component(name: str) -> str:
    """One path component that is safe on every storage and cannot climb out of its parent."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip().rstrip(". ")
    if not name or set(name) <= {"."}:
        name = "_" + name.replace(".", "_") if name else "_"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name[:200]


def render_root(template: str, *, dataset: str, proposal: str | None, user: str | None) -> str:
    """Fill the ``[storage] root`` template; each placeholder value is sanitised as one component."""
    values = {"dataset": sanitise_component(dataset),
              "proposal": sanitise_component(proposal or "no-proposal"),
              "user": sanitise_component(user or "anonymous")}
    try:
        rendered = template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"[storage] root: bad template {template!r} ({exc})",
                          "Use only the placeholders {proposal}, {dataset} and {user}.") from exc
    parts = [p for p in rendered.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"[storage] root: {template!r} contains '.' or '..'",
                          "Use a template of plain folder names and placeholders.")
    return "/".join(parts)
