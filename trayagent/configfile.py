"""Writing the user's configuration file, and showing where every effective value comes from.

Saving edits the file in place with tomlkit, so the comments and the layout someone wrote stay; only the
keys that changed are touched, and a key is added only where it differs from what the layers below
(the site-wide file, the defaults) give. Keys the site-wide file locks are never written: a change to one
is refused with the site file's name, as is a save into a file that is read-only or is the site file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from .config import SCHEMA, Config, config_path, toml_value, validate
from .errors import ConfigError
from .paths import Paths, site_config_file


def save_settings(cfg: Config, paths: Paths, sections: dict[str, dict[str, Any]]) -> Path:
    """Write the settings that changed into the user's file; returns the file written."""
    given = {f"{s}.{k}": v for s, keys in sections.items() if s in SCHEMA and isinstance(keys, dict)
             for k, v in keys.items() if k in SCHEMA[s]}
    validate({s: keys for s, keys in sections.items() if s in SCHEMA}, "settings")
    effective = {f"{s}.{k}": v for s, keys in cfg.as_dict().items() for k, v in keys.items()}
    refused = sorted(k for k in cfg.locked & given.keys() if given[k] != effective[k])
    if refused:
        raise ConfigError(f"{', '.join(refused)}: set by your facility in {cfg.layers.site}; "
                          "this cannot be changed here",
                          "Leave it as it is, or ask your IT to change the site-wide file.", field="config")
    path = cfg.source or config_path(paths)
    _check_writable(path, cfg)
    doc = _parse(path)
    for key, value in given.items():
        if key not in cfg.locked:
            _set(doc, key, value, cfg.layers.below_user(key))
    _write(path, tomlkit.dumps(doc))
    return path


def _check_writable(path: Path, cfg: Config) -> None:
    """A file that is the site's, or carries no write permission (IT made it read-only on purpose),
    is refused up front: root could write it anyway, and the file is not the user's to change."""
    site = cfg.layers.site
    if site is not None and path.exists() and path.resolve() == site.resolve():
        raise ConfigError(f"{path} is the site-wide configuration file: it is not saved from here",
                          "Ask your IT to change it, or use a configuration file of your own.",
                          field="config")
    if path.exists() and not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{path}: the configuration file is read-only, so nothing was saved",
                          "Ask whoever manages this computer, or use a configuration file of your own.",
                          field="config")


def _parse(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})", "Check the path and permissions.") from exc


def _set(doc: tomlkit.TOMLDocument, key: str, value: Any, below: Any) -> None:
    """Change a key the file holds (in place), or add one that differs from the layers below."""
    section, name = key.split(".", 1)
    table = doc.get(section)
    if isinstance(table, Table) and name in table:
        if table[name] != value:
            table[name] = value
        return
    if value == below:
        return
    if not isinstance(table, Table):
        table = tomlkit.table()
        doc[section] = table
    table[name] = value


def _write(path: Path, text: str) -> None:
    """Replace the file atomically (a crash leaves the old or the new file, never half of one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be saved ({exc.strerror or exc})",
                          "Check that the folder is writable, or use a configuration file of your own.",
                          field="config") from exc


def show_config(cfg: Config, paths: Paths) -> str:
    """The effective configuration as TOML, each value followed by where it comes from."""
    layers = cfg.layers
    user = cfg.source or config_path(paths)
    lines = [f"# site-wide file: {layers.site or f'{site_config_file()} (absent)'}",
             f"# user file: {user}{'' if user.exists() else ' (absent)'}"]
    if layers.locked:
        lines.append(f"# locked by the site-wide file: {', '.join(sorted(layers.locked))}")
    lines += [f"# {key}: the user file's value is ignored (locked)" for key in layers.overridden]
    for section, values in cfg.as_dict().items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {toml_value(value)}  # {layers.origin(f'{section}.{key}')}"
                  for key, value in values.items()]
    return "\n".join(lines)

