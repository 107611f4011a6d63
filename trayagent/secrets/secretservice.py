"""The Linux Secret Service, spoken to through jeepney and secretstorage rather than through keyring.

Why: at the start of every `trayagent upload` the secret is read while the first byte waits.
Through keyring one read took 91 ms (86 ms of CPU, mostly importing keyring's metadata,
backports and email dependencies) in a fresh interpreter; through secretstorage, which keyring's
own SecretService backend uses, 44 ms (40 ms of CPU). That CPU is shared with the start-up.

A read, on the path to the first byte, first tries the common case in one short exchange over
jeepney (the D-Bus library under secretstorage): default collection unlocked, secret sent with the
spec's ``plain`` session. secretstorage would negotiate an encrypted session, which costs importing
``cryptography`` (~10 ms of CPU of a ~24 ms read, measured). The Secret Service specification
(section 7, "Transfer of Secrets") says that encryption is meant to keep plain text out of swap
and caches, not to resist an attacker on the bus, and calls it "of questionable value" for
applications that cannot keep their own memory from being paged out, Python among them; the
session bus reaches only this user's processes, which may read the unlocked keyring anyway.
Anything else (a locked keyring that needs its unlock prompt, no default collection) goes through
secretstorage as before, as do writes.

The items are exactly the ones keyring's SecretService backend reads and writes (default
collection, attributes ``service`` and ``username``, keyring's ``application`` and label), so
`keyring get` and trayagent see each other's secrets. Whenever keyring is configured to use
something else (``PYTHON_KEYRING_BACKEND``, a ``keyringrc.cfg``, ``KEYRING_PROPERTY_*``) or no
Secret Service answers, ``applies``/``Unavailable`` send the caller to keyring, which then makes
the same choice it always made.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from secretstorage.collection import Collection

KEYRING_BACKEND = "keyring.backends.SecretService.Keyring"
KEYRING_APPID = "Python keyring library"  # what keyring's backend stores as "application"
_TIMEOUT = 30.0  # seconds for one D-Bus reply (a service starting on demand answers late)


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


_BUS = "org.freedesktop.secrets"
_SERVICE_PATH = "/org/freedesktop/secrets"
_DEFAULT_COLLECTION = "/org/freedesktop/secrets/aliases/default"
_NO_SERVICE = frozenset({"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.Spawn.ExecFailed",
                         "org.freedesktop.DBus.Error.NoReply"})


class _Slow(enum.Enum):
    """The quick read cannot answer (locked, no default collection): secretstorage decides."""
    PATH = enum.auto()


def _read_unlocked(service: str, account: str) -> str | None | Literal[_Slow.PATH]:
    """The secret from an unlocked default collection, over a ``plain`` session (see above)."""
    try:
        from jeepney import DBusAddress, DBusErrorResponse, Properties, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.wrappers import unwrap_msg
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    try:
        connection = open_dbus_connection(bus="SESSION")
    except (KeyError, ConnectionError, ValueError, OSError) as exc:  # KeyError: no bus address set
        raise Unavailable(str(exc)) from exc
    with closing(connection):
        def call(message: Any) -> Any:
            return unwrap_msg(connection.send_and_get_reply(message, timeout=_TIMEOUT))

        collection = DBusAddress(_DEFAULT_COLLECTION, _BUS, "org.freedesktop.Secret.Collection")
        try:
            (_, locked), = call(Properties(collection).get("Locked"))
            if locked:
                return _Slow.PATH
            (paths,) = call(new_method_call(collection, "SearchItems", "a{ss}", (_query(service, account),)))
            if not paths:
                return None
            service_address = DBusAddress(_SERVICE_PATH, _BUS, "org.freedesktop.Secret.Service")
            _, session = call(new_method_call(service_address, "OpenSession", "sv", ("plain", ("s", ""))))
            item = DBusAddress(paths[0], _BUS, "org.freedesktop.Secret.Item")
            ((_, _, value, _),) = call(new_method_call(item, "GetSecret", "o", (session,)))
        except DBusErrorResponse as exc:
            if exc.name in _NO_SERVICE:
                raise Unavailable(exc.name) from exc
            return _Slow.PATH
    return bytes(value).decode("utf-8")


def read(service: str, account: str) -> str | None:
    found = _read_unlocked(service, account)
    if found is not _Slow.PATH:
        return found
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
