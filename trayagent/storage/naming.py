"""Safe storage names: a dataset called ``../../etc`` must land inside the storage root, not above it."""

from __future__ import annotations

import re
import string
import unicodedata

from ..errors import ConfigError

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


_MAX_BYTES = 200  # well under the 255-byte name limit of common file systems


def sanitise_component(name: str) -> str:
    """One path component that is safe on every storage and cannot climb out of its parent."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip()
    name = name.encode("utf-8")[:_MAX_BYTES].decode("utf-8", "ignore").rstrip(". ")
    if not name:
        name = "_"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


_PLACEHOLDERS = ("proposal", "dataset", "user")


def _check_template(template: str) -> None:
    """Only bare {proposal} {dataset} {user}: no attribute access, indexing or format specs."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"[storage] root: bad template {template!r} ({exc})",
                          "Use only the placeholders {proposal}, {dataset} and {user}.") from exc
    for field, spec, conv in fields:
        if field not in _PLACEHOLDERS or spec or conv:
            raise ConfigError(f"[storage] root: unknown placeholder {{{field}}} in {template!r}",
                              "Use only the placeholders {proposal}, {dataset} and {user}.")


def render_root(template: str, *, dataset: str, proposal: str | None, user: str | None) -> str:
    """Fill the ``[storage] root`` template; each placeholder value is sanitised as one component."""
    _check_template(template)
    values = {"dataset": sanitise_component(dataset),
              "proposal": sanitise_component(proposal or "no-proposal"),
              "user": sanitise_component(user or "anonymous")}
    rendered = template.format(**values)
    parts = [p for p in rendered.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ConfigError(f"[storage] root: {template!r} contains '.' or '..'",
                          "Use a template of plain folder names and placeholders.")
    return "/".join(parts)
