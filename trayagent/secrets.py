"""Secrets live only in the OS keyring (Secret Service, Windows Credential Locker, macOS Keychain).

One keyring entry per (service, account): service names are ``trayagent:storage:<remote>`` and
``trayagent:catalogue:<url>``, so two facilities or two catalogues never share a secret.
"""

from __future__ import annotations

import logging
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


def get_secret(service: str, account: str) -> str | None:
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
