"""trayagent.secrets.store against the session's real Secret Service (gnome-keyring, conftest)."""

from __future__ import annotations

import contextlib
import os
import secrets as pysecrets
import subprocess
import sys
from pathlib import Path

import pytest
from agentctl import Trayagent
from servers import SessionKeyring, WebDAVServer, _DBusDaemon

from trayagent.secrets import secretservice
from trayagent.secrets.store import delete_secret, get_secret, prefetch_secret, set_secret


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


# -- the direct Secret Service path (trayagent.secrets.secretservice) and keyring see the same entries ----------


def test_the_secret_service_path_is_taken_here() -> None:
    """The session keyring is what keyring itself would use: trayagent talks to it directly."""
    assert secretservice.applies()


def test_a_secret_stored_by_keyring_is_read_by_trayagent_and_the_other_way_round() -> None:
    import keyring

    service = f"trayagent:test:{pysecrets.token_hex(4)}"
    keyring.set_password(service, "ann", "from-keyring")
    try:
        assert secretservice.read(service, "ann") == "from-keyring"
        set_secret(service, "ann", "from-trayagent")  # replaces keyring's item, no second entry
        assert keyring.get_password(service, "ann") == "from-trayagent"
        assert delete_secret(service, "ann") is True
        assert keyring.get_password(service, "ann") is None
        assert delete_secret(service, "ann") is False
    finally:
        with contextlib.suppress(Exception):
            keyring.delete_password(service, "ann")


def test_trayagent_writes_the_item_keyring_writes() -> None:
    """Same attributes and label as keyring's SecretService backend, so its tools list it too."""
    import keyring
    import secretstorage

    service = f"trayagent:test:{pysecrets.token_hex(4)}"
    by_keyring = f"{service}:keyring"
    set_secret(service, "ann", "pw")
    keyring.set_password(by_keyring, "ann", "pw")
    try:
        with contextlib.closing(secretstorage.dbus_init()) as bus:
            collection = secretstorage.get_default_collection(bus)
            ours = list(collection.search_items({"service": service}))
            theirs = list(collection.search_items({"service": by_keyring}))
            assert len(ours) == 1 and len(theirs) == 1
            # gnome-keyring adds xdg:schema to an item once it has written it to its file and read it
            # back (seen on one item of the two and not the other, depending on timing): left out here
            def written(item: secretstorage.Item) -> dict[str, str]:
                return {k: v for k, v in item.get_attributes().items() if k != "xdg:schema"}
            assert written(ours[0]) == {**written(theirs[0]), "service": service}
            assert written(ours[0]) == {"service": service, "username": "ann", "application": "Python keyring library"}
            assert ours[0].get_label() == f"Password for 'ann' on '{service}'"
            assert theirs[0].get_label() == f"Password for 'ann' on '{by_keyring}'"
    finally:
        delete_secret(service, "ann")
        with contextlib.suppress(Exception):
            keyring.delete_password(by_keyring, "ann")


@pytest.mark.parametrize("setting", ["backend", "property", "config-file"])
def test_keyring_configured_otherwise_is_left_to_keyring(setting: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert secretservice.applies()
    if setting == "backend":
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    elif setting == "property":
        monkeypatch.setenv("KEYRING_PROPERTY_SCHEME", "KeePassXC")
    else:
        (tmp_path / "python_keyring").mkdir()
        (tmp_path / "python_keyring" / "keyringrc.cfg").write_text("[backend]\ndefault-keyring=x.Y\n")
    assert not secretservice.applies()


def test_no_session_bus_says_what_to_do() -> None:
    """Without a reachable Secret Service the message names the keyring, for reads and writes."""
    code = ("from trayagent.secrets.store import get_secret, set_secret\n"
            "for call in (lambda: get_secret('s', 'a'), lambda: set_secret('s', 'a', 'x')):\n"
            "    try:\n        call()\n    except Exception as exc:\n"
            "        print(type(exc).__name__, str(exc).splitlines()[0])\n")
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stderr
    assert all(line.startswith("AuthError The OS keyring is not available") for line in lines), lines


def test_a_session_bus_without_a_secret_service_says_what_to_do(tmp_path: Path) -> None:
    """A desktop without a keyring daemon: the quick read learns there is no Secret Service, keyring
    then finds no backend either, and reads and writes end in the keyring message, no traceback."""
    code = ("from trayagent.secrets.store import get_secret, set_secret\n"
            "for call in (lambda: get_secret('s', 'a'), lambda: set_secret('s', 'a', 'x')):\n"
            "    try:\n        call()\n    except Exception as exc:\n"
            "        print(type(exc).__name__, str(exc).splitlines()[0])\n")
    with _DBusDaemon(tmp_path / "bus") as bus:  # a session bus with no service directories
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.address},
                             capture_output=True, text=True, timeout=60, check=False)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stderr
    assert all(line.startswith("AuthError The OS keyring is not available") for line in lines), lines
    assert "Traceback" not in out.stderr


def test_commands_without_a_keyring_say_what_to_do(ta: Trayagent, webdav_server: WebDAVServer,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`login storage` and an upload that needs the stored password: exit 2 and the message, no traceback."""
    ta.use_webdav(webdav_server)  # stored while the keyring is there
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.dat").write_bytes(b"x")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")  # ta.env() copies os.environ
    for args, stdin in ((("login", "storage", "--password-stdin"), "pw\n"),
                        (("upload", str(tmp_path / "d"), "--dataset", "nokeyring"), None)):
        proc = ta.run(*args, input=stdin)
        assert proc.returncode == 2, proc.stderr
        assert "The OS keyring is not available" in proc.stderr and "unlock the keyring" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not ta.catalogue_datasets()


def test_a_read_is_one_short_exchange_without_cryptography() -> None:
    """On the path to the first byte: an unlocked keyring is read over a plain session (see
    secretservice), without importing secretstorage's encryption (~10 ms of CPU)."""
    service = f"trayagent:test:{pysecrets.token_hex(4)}"
    set_secret(service, "ann", "pw ✓")
    try:
        code = ("import sys\nfrom trayagent.secrets.store import get_secret\n"
                f"print(get_secret({service!r}, 'ann'), get_secret({service!r}, 'bob'))\n"
                "print(sorted(m for m in ('cryptography', 'secretstorage', 'keyring') if m in sys.modules))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
        assert out.stdout.splitlines() == ["pw ✓ None", "[]"], out.stderr
    finally:
        delete_secret(service, "ann")


def test_a_locked_keyring_goes_to_its_unlock_prompt(tmp_path: Path) -> None:
    """A locked keyring is left to secretstorage, which asks the Secret Service to unlock it (its
    prompt). Nobody can answer the prompt here, so the read ends with the keyring message at once
    instead of returning "no secret". Its own keyring: a locked one cannot be unlocked again here."""
    code = ("import contextlib, secretstorage\nfrom trayagent.secrets.store import get_secret, set_secret\n"
            "set_secret('svc', 'ann', 'pw')\nprint(get_secret('svc', 'ann'))\n"
            "with contextlib.closing(secretstorage.dbus_init()) as bus:\n"
            "    secretstorage.get_default_collection(bus).lock()\n"
            "try:\n    print(get_secret('svc', 'ann'))\nexcept Exception as exc:\n"
            "    print(type(exc).__name__, str(exc).splitlines()[0])\n")
    with SessionKeyring(tmp_path / "keyring") as keyring_:
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **keyring_.env()}, capture_output=True,
                             text=True, timeout=60, check=False)
    message = ("AuthError The OS keyring is not available (the keyring stays locked (the unlock prompt was "
               "dismissed)).")
    assert out.stdout.splitlines() == ["pw", message], out.stderr
