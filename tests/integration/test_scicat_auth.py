"""SciCat login: password (local and LDAP routes), pasted token, OIDC browser flow, logout.

Against the contract fake over loopback and the real (private) gnome-keyring: the secrets must land in
the keyring and nowhere else, and a wrong password must say what to do.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from scicat_server import ScicatServer

from trayagent.catalogue.scicat.auth import (
    CURRENT,
    client_for,
    login_catalogue,
    logout_catalogue,
    token_account,
)
from trayagent.errors import AuthError, ConfigError, LoginRequired
from trayagent.secrets.store import catalogue_service, get_secret


def test_password_login_stores_password_and_token_in_keyring(scicat: ScicatServer, scicat_config) -> None:
    alice = scicat.users["alice"]
    ident = login_catalogue(scicat_config(), "alice", password=alice.password)
    assert (ident.username, ident.email) == ("alice", "alice@example.org")
    assert ident.display_name == "Alice Liddell"
    assert ident.groups == ("p1234", "staff")
    service = catalogue_service(scicat.url)
    assert get_secret(service, "alice") == alice.password
    assert get_secret(service, token_account("alice")).count(".") == 2
    assert get_secret(service, CURRENT) == "alice"
    assert scicat.counts["POST /auth/login"] == 1 and scicat.counts["GET /users/my/identity"] == 1


def test_wrong_password_is_a_clear_auth_error_and_stores_nothing(scicat: ScicatServer, scicat_config) -> None:
    with pytest.raises(AuthError) as caught:
        login_catalogue(scicat_config(), "alice", password="not-it")
    assert "did not accept the password of 'alice'" in str(caught.value)
    assert "ldap" in caught.value.hint
    assert get_secret(catalogue_service(scicat.url), "alice") is None


def test_ldap_route_is_chosen_by_config(scicat: ScicatServer, scicat_config) -> None:
    bob = scicat.add_user("bob", "facility-pw", ["p777"], route="ldap")
    with pytest.raises(AuthError):
        login_catalogue(scicat_config(), "bob", password=bob.password)  # /auth/login knows no bob
    ident = login_catalogue(scicat_config(auth="ldap"), "bob", password=bob.password)
    assert ident.username == "bob"
    assert scicat.counts["POST /auth/ldap"] == 1 and scicat.counts["POST /auth/login"] == 1


def test_functional_account_without_identity_uses_whoami(scicat: ScicatServer, scicat_config) -> None:
    ingestor = scicat.add_user("ingestor", "fpw", ["p1234"], functional=True)
    ident = login_catalogue(scicat_config(), "ingestor", password=ingestor.password)
    assert (ident.username, ident.groups) == ("ingestor", ("p1234",))
    assert scicat.counts["GET /auth/whoami"] == 1


def test_token_login_keeps_no_password(scicat: ScicatServer, scicat_config) -> None:
    token = scicat.issue_token("alice")
    ident = login_catalogue(scicat_config(), token=token + "\n")
    assert ident.username == "alice"
    service = catalogue_service(scicat.url)
    assert get_secret(service, token_account("alice")) == token
    assert get_secret(service, "alice") is None
    assert scicat.counts["POST /auth/login"] == 0


def test_expired_or_foreign_token_is_refused(scicat: ScicatServer, scicat_config) -> None:
    with pytest.raises(AuthError, match="did not accept the token"):
        login_catalogue(scicat_config(), token=scicat.issue_token("alice", lifetime=-5))
    with pytest.raises(AuthError, match="did not accept the token"):
        login_catalogue(scicat_config(), token="not.a.jwt")


def _follow(url: str) -> None:
    """A browser stand-in: GET the OIDC start page and follow the redirects to the loopback callback."""
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and "logged in" in resp.text


def test_oidc_browser_flow_receives_token_on_loopback(scicat: ScicatServer, scicat_config) -> None:
    def opener(url: str) -> None:
        query = parse_qs(urlsplit(url).query)
        assert query["client"] == ["trayagent"]
        callback = query["returnUrl"][0]
        assert callback.startswith("http://127.0.0.1:")
        scicat.register_oidc("trayagent", callback, "alice")  # the site registers the success URL
        _follow(url)

    ident = login_catalogue(scicat_config(oidc_client="trayagent"), oidc=True, opener=opener)
    assert ident.username == "alice"
    assert get_secret(catalogue_service(scicat.url), token_account("alice"))
    assert get_secret(catalogue_service(scicat.url), "alice") is None


def test_oidc_callback_checks_the_per_run_secret(scicat: ScicatServer, scicat_config) -> None:
    def opener(url: str) -> None:
        callback = parse_qs(urlsplit(url).query)["returnUrl"][0]
        parts = urlsplit(callback)
        forged = f"{parts.scheme}://{parts.netloc}/trayagent/guessed?access-token=x"
        assert requests.get(forged, timeout=10).status_code == 400

    with pytest.raises(AuthError, match="did not finish"):
        from trayagent.catalogue.scicat.auth import oidc_login
        oidc_login(scicat.url, "trayagent", opener, timeout=0.5)


def test_oidc_needs_a_configured_client(scicat_config) -> None:
    with pytest.raises(ConfigError, match="no OIDC client"):
        login_catalogue(scicat_config(), oidc=True, opener=lambda url: None)


def test_logout_forgets_secrets_and_revokes_the_token(scicat: ScicatServer, scicat_config) -> None:
    cfg = scicat_config()
    login_catalogue(cfg, "alice", password=scicat.users["alice"].password)
    token = get_secret(catalogue_service(scicat.url), token_account("alice"))
    assert logout_catalogue(cfg) is True
    assert token in scicat.revoked
    service = catalogue_service(scicat.url)
    assert [get_secret(service, a) for a in ("alice", token_account("alice"), CURRENT)] == [None] * 3
    assert logout_catalogue(cfg) is False
    with pytest.raises(LoginRequired, match="not logged in"):
        client_for(cfg)


def test_logout_with_server_down_still_forgets(scicat: ScicatServer, scicat_config) -> None:
    cfg = scicat_config()
    login_catalogue(cfg, "alice", password=scicat.users["alice"].password)
    scicat.down()
    try:
        assert logout_catalogue(cfg, "alice") is True
    finally:
        scicat.up()
    assert get_secret(catalogue_service(scicat.url), "alice") is None
