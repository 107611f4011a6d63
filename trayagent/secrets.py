"""Secrets live only in the OS keyring (Secret Service, Windows Credential Locker, macOS Keychain).

One keyring entry per (service, account): service names are ``trayagent:storage:<remote>`` and
``trayagent:catalogue:<url>``, so two facilities or two catalogues never share a secret.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from types import ModuleType

from .errors import AuthError

log = logging.getLogger(__name__)


def storage_service(remote: str) -> str:
    return f"trayagent:storage:{remote}"


def catalogue_service(url: str) -> str:
    return f"trayagent:catalogue:{url.rstrip('/')}"


def _unavailable(exc: Exception) -> AuthError:
    return AuthError(
        f"The OS keyring is not available ({exc}).",
        "Start a keyring service (GNOME Keyring, KWallet, Windows Credential Manager) and log in again.",
    )


def _keyring() -> ModuleType:
    """Imported on first use (it loads its backends' entry points): a CLI run against the
    embedded default never needs it, and an upload reads it while rclone starts."""
    import keyring
    import keyring.errors

    return keyring


_prefetched: dict[tuple[str, str], Future[str | None]] = {}
_prefetch_lock = threading.Lock()


def prefetch_secret(service: str, account: str) -> None:
    """Start reading a secret in a background thread; the next ``get_secret`` of it collects it.

    Reading costs an upload ~50 ms (importing keyring, detecting its backend, D-Bus round trips to
    the Secret Service); started early, the round trips overlap the caller's own start-up."""
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


def _read(service: str, account: str) -> str | None:
    keyring = _keyring()
    try:
        return keyring.get_password(service, account)
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc


def set_secret(service: str, account: str, secret: str) -> None:
    keyring = _keyring()
    try:
        keyring.set_password(service, account, secret)
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc
    log.info("stored a secret in the keyring for %s (account %s)", service, account)


def delete_secret(service: str, account: str) -> bool:
    """Remove the entry; False when there was none."""
    keyring = _keyring()
    try:
        keyring.delete_password(service, account)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise _unavailable(exc) from exc
    log.info("removed the keyring secret for %s (account %s)", service, account)
    return True
