"""Secrets live only in the OS keyring (Secret Service, Windows Credential Locker, macOS Keychain).

One keyring entry per (service, account): service names are ``trayagent:storage:<remote>`` and
``trayagent:catalogue:<url>``, so two facilities or two catalogues never share a secret.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import ModuleType
from typing import Literal, TypeVar

from ..errors import AuthError
from . import secretservice

log = logging.getLogger(__name__)
T = TypeVar("T")


def storage_service(remote: str) -> str:
    return f"trayagent:storage:{remote}"


def catalogue_service(url: str) -> str:
    return f"trayagent:catalogue:{url.rstrip('/')}"


def _unavailable(exc: Exception) -> AuthError:
    return AuthError(
        f"The OS keyring is not available ({exc}).",
        "Start or unlock the keyring (GNOME Keyring, KWallet, Windows Credential Manager), then log in again.",
    )


def _keyring() -> ModuleType:
    """Imported on first use (it loads its backends' entry points): a CLI run against the
    embedded default never needs it, and on Linux the Secret Service is usually spoken to directly."""
    import keyring
    import keyring.errors

    return keyring


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Whatever the store fails with becomes one message that says what to do."""
    try:
        yield
    except secretservice.SecretServiceError as exc:
        raise _unavailable(exc) from exc
    except (RuntimeError, OSError) as exc:  # keyring: no viable backend, or its session bus is gone
        raise _unavailable(exc) from exc
    except Exception as exc:
        if isinstance(exc, _keyring().errors.KeyringError):
            raise _unavailable(exc) from exc
        raise


_prefetched: dict[tuple[str, str], Future[str | None]] = {}
_prefetch_lock = threading.Lock()


def prefetch_secret(service: str, account: str) -> None:
    """Start reading a secret in a background thread; the next ``get_secret`` of it collects it.

    A read from an unlocked keyring costs ~6 ms of CPU and a few D-Bus round trips (much more
    through keyring, see secretservice); started early, the round trips overlap the caller's start-up."""
    key = (service, account)
    with _prefetch_lock:
        if key in _prefetched:
            return
        future: Future[str | None] = Future()
        _prefetched[key] = future

    def read() -> None:
        try:
            future.set_result(_read(service, account))
        except BaseException as exc:  # noqa: BLE001 - raised again by get_secret
            future.set_exception(exc)

    threading.Thread(target=read, name="keyring-read", daemon=True).start()


def get_secret(service: str, account: str) -> str | None:
    """The stored secret, or None. A prefetched value is used once; later calls read afresh."""
    with _prefetch_lock:
        future = _prefetched.pop((service, account), None)
    return future.result() if future is not None else _read(service, account)


def set_secret(service: str, account: str, secret: str) -> None:
    with _store_errors():
        if _direct(secretservice.write, service, account, secret) is _Ask.KEYRING:
            _keyring().set_password(service, account, secret)
    log.info("stored a secret in the keyring for %s (account %s)", service, account)


def delete_secret(service: str, account: str) -> bool:
    """Remove the entry; False when there was none."""
    with _store_errors():
        removed = _direct(secretservice.remove, service, account)
        if removed is _Ask.KEYRING:
            keyring = _keyring()
            try:
                keyring.delete_password(service, account)
                removed = True
            except keyring.errors.PasswordDeleteError:
                removed = False
    if removed:
        log.info("removed the keyring secret for %s (account %s)", service, account)
    return removed


def _read(service: str, account: str) -> str | None:
    with _store_errors():
        found = _direct(secretservice.read, service, account)
        return _keyring().get_password(service, account) if found is _Ask.KEYRING else found


class _Ask(enum.Enum):
    KEYRING = "keyring"


def _direct(op: Callable[..., T], *args: str) -> T | Literal[_Ask.KEYRING]:
    """``op`` on the Secret Service when keyring would use it, else ``_Ask.KEYRING``."""
    if not secretservice.applies():
        return _Ask.KEYRING
    try:
        return op(*args)
    except secretservice.Unavailable:
        return _Ask.KEYRING
