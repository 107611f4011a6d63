"""The Linux Secret Service, spoken to through secretstorage rather than through keyring.

Why: at the start of every `trayagent upload` the secret is read while the first byte waits.
Through keyring one read took 91 ms (86 ms of CPU, mostly importing keyring's metadata,
backports and email dependencies) in a fresh interpreter; through secretstorage, which keyring's
own SecretService backend uses, 44 ms (40 ms of CPU). That CPU is shared with the start-up.

The items are exactly the ones keyring's SecretService backend reads and writes (default
collection, attributes ``service`` and ``username``, keyring's ``application`` and label), so
`keyring get` and trayagent see each other's secrets. Whenever keyring is configured to use
something else (``PYTHON_KEYRING_BACKEND``, a ``keyringrc.cfg``, ``KEYRING_PROPERTY_*``) or no
Secret Service answers, ``applies``/``Unavailable`` send the caller to keyring, which then makes
the same choice it always made.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secretstorage.collection import Collection

KEYRING_BACKEND = "keyring.backends.SecretService.Keyring"
KEYRING_APPID = "Python keyring library"  # what keyring's backend stores as "application"


class Unavailable(Exception):
    """No Secret Service to talk to here: use keyring instead."""


def applies() -> bool:
    """Would keyring use the Secret Service? (Linux, and keyring not configured otherwise.)"""
    if not sys.platform.startswith("linux"):
        return False
    if os.environ.get("PYTHON_KEYRING_BACKEND", KEYRING_BACKEND) != KEYRING_BACKEND:
        return False
    if any(k.startswith("KEYRING_PROPERTY_") for k in os.environ):
        return False
    config = _keyring_config_file()
    return config is not None and not config.exists()


def _keyring_config_file() -> Path | None:
    """keyring's own config file on Linux (its ``platform_.config_root``); None: no home to find it in."""
    try:
        root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    except RuntimeError:
        return None
    return Path(root, "python_keyring", "keyringrc.cfg")


class SecretServiceError(Exception):
    """The Secret Service answered with an error (locked, prompt dismissed, D-Bus failure)."""


@contextmanager
def _collection() -> Iterator[Collection]:
    try:
        import secretstorage
        from jeepney import DBusErrorResponse
        from secretstorage.exceptions import SecretStorageException
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    try:
        connection = secretstorage.dbus_init()
    except (SecretStorageException, OSError) as exc:  # no session bus (OSError: its socket is gone)
        raise Unavailable(str(exc)) from exc
    with closing(connection):
        try:
            if not secretstorage.check_service_availability(connection):
                raise Unavailable("no Secret Service on the session bus")
            collection = secretstorage.get_default_collection(connection)
            if collection.is_locked():
                collection.unlock()
                if collection.is_locked():
                    raise SecretServiceError("the keyring stays locked (the unlock prompt was dismissed)")
            yield collection
        except (SecretStorageException, DBusErrorResponse) as exc:
            raise SecretServiceError(str(exc) or type(exc).__name__) from exc


def _query(service: str, account: str) -> dict[str, str]:
    return {"service": service, "username": account}


def read(service: str, account: str) -> str | None:
    with _collection() as collection:
        for item in collection.search_items(_query(service, account)):
            if item.is_locked():
                item.unlock()
            return item.get_secret().decode("utf-8")
    return None


def write(service: str, account: str, secret: str) -> None:
    with _collection() as collection:
        collection.create_item(f"Password for '{account}' on '{service}'",
                               {**_query(service, account), "application": KEYRING_APPID}, secret.encode(),
                               replace=True)


def remove(service: str, account: str) -> bool:
    """Remove the first matching entry, as keyring does; False when there was none."""
    with _collection() as collection:
        for item in collection.search_items(_query(service, account)):
            item.delete()
            return True
    return False
