"""The storage side: which rclone filesystem string reaches the user's storage, with which secret.

The secret comes from the keyring and is put into an rclone connection string that travels only in
rc request bodies (never argv, env or files); the obscured form is registered with the redactor so
it cannot reach the log.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..config import Config
from ..errors import StorageLogin
from ..paths import Paths
from ..secrets.store import get_secret, storage_service
from ..secrets.store import prefetch_secret as _prefetch
from .process import find_rclone
from .rclone import RcloneDaemon
from .redact import Redactor

# backend type -> (user parameter, secret parameter, secret must be obscured)
_CREDENTIAL_PARAMS: dict[str, tuple[str, str, bool]] = {
    "s3": ("access_key_id", "secret_access_key", False),
    "webdav": ("user", "pass", True),
    "sftp": ("user", "pass", True),
    "ftp": ("user", "pass", True),
    "smb": ("user", "pass", True),
    "swift": ("user", "key", False),
    "azureblob": ("account", "key", False),
}


# backend type -> rclone options trayagent sets unless the remote sets them itself (measured in
# tests/bench; README "Benchmarks").
# WebDAV: rclone spaces API calls at least 10 ms apart across *all* transfers, which caps small files
# at ~30/s whatever the server can do; the parallel transfers ([transfer] transfers) already bound the
# load, and rclone still backs off on 429/503 answers.
# S3: the parts of a big file are uploaded 8 at a time instead of 4: each part waits on a round trip,
# and 8 in flight keep the link busy (10-15 % faster for 1 GiB here) for 8 x 5 MiB of buffers.
TUNING: dict[str, dict[str, str]] = {
    "webdav": {"pacer_min_sleep": "1ms"},
    "s3": {"upload_concurrency": "8"},
}
# backend type -> options for the copies of small files only, which the engine verifies afterwards by
# listing their folders (size and hash of each). S3: rclone reads the object back with a HEAD after every
# upload; for a single-part upload the PUT's answer already carries the MD5 that rclone checks, and the
# listing then checks size and MD5 again, so the HEAD only doubles the requests (10,000 files of 4 KiB to
# SeaweedFS: 10.6 s with it, 7.5 s without). Not where the remote's own settings decide on chunking or
# on the HEAD: a multipart upload's answer has no MD5.
SMALL_FILES: dict[str, dict[str, str]] = {"s3": {"no_head": "true"}}
SMALL_FILES_UNLESS = frozenset({"no_head", "upload_cutoff"})
SMALL_FILE_BYTES = 64 << 20  # below rclone's default S3 upload_cutoff (200 MiB): one PUT each


# Backends whose servers take many requests in parallel: small files go faster with more of them in flight
# (2,000 x 512 KiB to S3: 8 transfers ~25 % faster than rclone's 4, tests/bench). WebDAV and SFTP servers are
# often one application process, for which 8 was slower than 4.
OBJECT_STORES = frozenset({"s3", "swift", "azureblob", "gcs", "b2", "oracleobjectstorage", "qingstor"})


def parallel_transfers(setting: int | str, backend: str) -> int:
    """``[transfer] transfers``: the number set, or for ``auto`` the one that suits the backend type."""
    if isinstance(setting, int):
        return setting
    return 8 if backend in OBJECT_STORES else 4


@dataclass(frozen=True)
class Remote:
    """A parsed ``[storage] remote``: the part before the path colon, and the path after it."""

    head: str  # "" for a local path, "name" or ":backend,params" or "name,params"
    path: str
    local: bool

    @property
    def backend(self) -> str:
        """Backend type for on-the-fly remotes (":webdav,..."), else the remote name."""
        return self.head.lstrip(":").split(",")[0]


def _split_unquoted(text: str) -> int:
    """Index of the first ':' outside quotes, or -1."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ":":
            return i
    return -1


def parse_remote(spec: str) -> Remote:
    if spec.startswith(":"):
        idx = _split_unquoted(spec[1:])
        if idx < 0:
            return Remote(spec, "", local=False)
        return Remote(spec[: idx + 1], spec[idx + 2:], local=False)
    idx = _split_unquoted(spec)
    if idx <= 1 or re.match(r"^[A-Za-z]:[\\/]", spec):  # no colon, or a Windows drive letter
        return Remote("", spec, local=True)
    return Remote(spec[:idx], spec[idx + 1:], local=False)


def _param(head: str, name: str) -> str | None:
    m = re.search(rf"[,]{name}=(?:'([^']*)'|\"([^\"]*)\"|([^,:]*))", head)
    return next((g for g in m.groups() if g is not None), None) if m else None


@dataclass(frozen=True)
class StorageTarget:
    """Everything the engine needs to address the storage: fs strings and a secret-free description."""

    remote: Remote
    user: str
    secret: str | None
    display: str  # shown to users and recorded in catalogues; never contains a secret
    host: str

    def key(self) -> str:
        return self.display

    def fs(self, subpath: str, obscure: Callable[[str], str], backend_type: str = "",
           preset: frozenset[str] = frozenset(), small_files: bool = False) -> str:
        """The rclone fs string for ``subpath`` under the remote's path.

        ``backend_type`` names the type of a named remote (from rclone's config), which decides the
        names of the credential parameters; ``preset`` are the options its config sets (those
        keep the user's value rather than trayagent's TUNING). ``small_files``: for a copy of files
        all below ``SMALL_FILE_BYTES`` that the engine verifies by listing (``SMALL_FILES``).
        """
        path = "/".join(p for p in (self.remote.path.rstrip("/"), subpath.strip("/")) if p)
        if self.remote.local:
            return str(Path(path)) if path else "/"
        head = self.remote.head
        backend = backend_type or self.remote.backend
        options = dict(TUNING.get(backend, {}))
        if small_files and not any(key in preset or _param(head, key) is not None for key in SMALL_FILES_UNLESS):
            options |= SMALL_FILES.get(backend, {})
        extra = [f"{key}={value}" for key, value in options.items()
                 if key not in preset and _param(head, key) is None]
        params = _CREDENTIAL_PARAMS.get(backend)
        if self.user and params:
            user_key, secret_key, must_obscure = params
            extra.append(f"{user_key}='{self.user}'")
            if self.secret:
                value = obscure(self.secret) if must_obscure else self.secret
                extra.append(f"{secret_key}='{value}'")
        return f"{head}{',' if extra else ''}{','.join(extra)}:{path}"


def launch_rclone(cfg: Config, paths: Paths, redactor: Redactor) -> RcloneDaemon:
    """The configured rclone, started without waiting for it (the first rc call waits): it starts
    up while the caller imports the engine, reads the keyring and scans the folders."""
    daemon = RcloneDaemon(find_rclone(cfg.storage.rclone), paths.ensure().runtime_dir,
                          cfg.storage.rclone_config, redactor, bwlimit=cfg.transfer.bwlimit)
    daemon.launch()
    return daemon


def prefetch_secret(cfg: Config) -> None:
    """Begin reading the storage secret that ``storage_target`` will need (see secrets.prefetch_secret)."""
    spec, user = cfg.storage.remote, cfg.storage.user
    if spec and user and not parse_remote(spec).local:
        _prefetch(storage_service(spec), user)


def storage_target(cfg: Config, paths: Paths, *, need_secret: bool = True) -> StorageTarget:
    """Resolve ``[storage]``: the embedded default is a local folder under the data folder."""
    spec = cfg.storage.remote or str(paths.default_storage)
    remote = parse_remote(spec)
    user = cfg.storage.user
    # the keyring is asked only when the secret is needed (a D-Bus round trip on Linux)
    secret = get_secret(storage_service(spec), user) if (need_secret and user and not remote.local) else None
    if need_secret and user and not remote.local and secret is None:
        raise StorageLogin(f"no storage password stored for user {user!r}",
                           "Store that user's storage password.", user)
    if remote.local:
        display, host = Path(spec).resolve().as_uri(), socket.gethostname()
    else:
        url = _param(remote.head, "url") or _param(remote.head, "endpoint") or _param(remote.head, "host")
        backend = remote.backend
        if url:
            host = endpoint_host({"url": url})
            display = f"{backend}+{url.rstrip('/')}/{remote.path}".rstrip("/")
        else:
            host = ""  # a named remote: its rclone config knows the endpoint (see endpoint_host)
            display = f"rclone:{backend}:{remote.path}".rstrip(":")
    return StorageTarget(remote, user, secret, display, host)


def endpoint_host(options: Mapping[str, Any]) -> str:
    """The host of a remote's endpoint (``url``, ``endpoint`` or ``host`` option, as in rclone's
    config or a connection string); "" when the remote names none (the catalogue then leaves its
    host field out rather than send the remote's name)."""
    url = next((str(options[k]) for k in ("url", "endpoint", "host") if options.get(k)), "")
    if not url:
        return ""
    parsed = urlparse(url if "://" in url else f"//{url}")
    return parsed.hostname or ""
