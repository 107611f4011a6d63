"""trayagent.secrets against the session's real Secret Service (gnome-keyring, conftest)."""

from __future__ import annotations

import secrets as pysecrets

from trayagent.secrets import delete_secret, get_secret, prefetch_secret, set_secret


def test_a_prefetched_secret_is_collected_once_then_read_afresh() -> None:
    service = f"trayagent:test:{pysecrets.token_hex(4)}"
    set_secret(service, "bob", "first")
    try:
        prefetch_secret(service, "bob")
        prefetch_secret(service, "bob")  # a second prefetch of the same entry starts nothing new
        assert get_secret(service, "bob") == "first"
        set_secret(service, "bob", "second")  # e.g. `trayagent login storage` in between
        assert get_secret(service, "bob") == "second"
    finally:
        delete_secret(service, "bob")


def test_prefetching_a_missing_secret_gives_none() -> None:
    service = f"trayagent:test:{pysecrets.token_hex(4)}"
    prefetch_secret(service, "nobody")
    assert get_secret(service, "nobody") is None
