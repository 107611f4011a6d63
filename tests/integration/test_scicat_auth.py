"""SciCat login: password (local and LDAP routes), pasted token, OIDC browser flow, logout.

Against the REAL backend (v4.27.0, tests/support/scicat_real.py) and the real (private) gnome-keyring: the
secrets must land in the keyring and nowhere else, and a refusal must say what to do. The contract
fake serves only what the real backend cannot: an OIDC identity provider, an account without an
identity, a server that goes away, and showing that logout reached the server.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from scicat_real import RealScicat
from scicat_server import ScicatServer

from trayagent.catalogue.scicat.auth import (
    CURRENT,
    client_for,
    login_catalogue,
    logout_catalogue,
    token_account,
)
from trayagent.catalogue.scicat.http import ScicatError
from trayagent.errors import AuthError, ConfigError, LoginRequired
from trayagent.secrets.store import catalogue_service, get_secret


def test_password_login_stores_password_and_token_in_keyring(real_scicat: RealScicat, real_config) -> None:
    ident = login_catalogue(real_config(), "beamuser", password="beamuser-pw")
    assert (ident.username, ident.email, ident.display_name) == ("beamuser", "beamuser@scicat.test", "beamuser")
    assert ident.groups == ("p20260123",)
    service = catalogue_service(real_scicat.url)
    assert get_secret(service, "beamuser") == "beamuser-pw"
    token = get_secret(service, token_account("beamuser"))
    assert get_secret(service, CURRENT) == "beamuser"
    who = requests.get(f"{real_scicat.url}/api/v3/auth/whoami", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})  # the stored token works for any client
    assert who.status_code == 200 and who.json()["username"] == "beamuser"


def test_wrong_password_is_a_clear_auth_error_and_stores_nothing(real_scicat: RealScicat, real_config) -> None:
    with pytest.raises(AuthError) as caught:
        login_catalogue(real_config(), "beamuser", password="not-it")
    assert "did not accept the password of 'beamuser'" in str(caught.value)
    assert "ldap" in caught.value.hint
    service = catalogue_service(real_scicat.url)
    assert [get_secret(service, a) for a in ("beamuser", token_account("beamuser"), CURRENT)] == [None] * 3


def test_ldap_route_without_ldap_at_the_site(real_scicat: RealScicat, real_config) -> None:
    """Issue 17.5: v4.27.0 answers /auth/ldap with 500 when the site has no LDAP. That is no outage
    with registration "retried automatically": the message names the route and the way out."""
    with pytest.raises(ScicatError) as caught:
        login_catalogue(real_config(auth="ldap"), "beamuser", password="beamuser-pw")
    text = str(caught.value)
    assert "LDAP login" in text and "HTTP 500" in text and 'auth = "local"' in caught.value.hint
    assert "retried" not in text and "Nothing is lost" not in text
    assert get_secret(catalogue_service(real_scicat.url), "beamuser") is None
    assert login_catalogue(real_config(auth="local"), "beamuser", password="beamuser-pw").username == "beamuser"


def test_ldap_route_is_chosen_by_config(scicat: ScicatServer, scicat_config) -> None:
    """Fake: the real backend here has no LDAP server behind /auth/ldap (see the test above)."""
    bob = scicat.add_user("bob", "facility-pw", ["p777"], route="ldap")
    with pytest.raises(AuthError):
        login_catalogue(scicat_config(), "bob", password=bob.password)  # /auth/login knows no bob
    ident = login_catalogue(scicat_config(auth="ldap"), "bob", password=bob.password)
    assert ident.username == "bob"
    assert scicat.counts["POST /auth/ldap"] == 1 and scicat.counts["POST /auth/login"] == 1


def test_server_error_while_reading_the_identity_at_login(scicat: ScicatServer, scicat_config) -> None:
    """Fake: the real backend does not fail /users/my/identity on demand. Issue 17.5: a login that
    fails with HTTP 500 must not promise that "registration is retried automatically"."""
    scicat.fail("500", path="/users/my/identity")
    with pytest.raises(ScicatError) as caught:
        login_catalogue(scicat_config(), "alice", password=scicat.users["alice"].password)
    assert "HTTP 500" in caught.value.message and "trayagent login" in caught.value.hint
    assert "retried" not in str(caught.value) and "Nothing is lost" not in str(caught.value)
    assert get_secret(catalogue_service(scicat.url), CURRENT) is None


def test_functional_account_without_identity_uses_whoami(scicat: ScicatServer, scicat_config) -> None:
    """Fake: v4.27.0 gives every account an identity; sites whose backend answers 404 need whoami."""
    ingestor = scicat.add_user("ingestor", "fpw", ["p1234"], functional=True)
    ident = login_catalogue(scicat_config(), "ingestor", password=ingestor.password)
    assert (ident.username, ident.groups) == ("ingestor", ("p1234",))
    assert scicat.counts["GET /auth/whoami"] == 1


def test_token_login_keeps_no_password(real_scicat: RealScicat, real_config) -> None:
    token = real_scicat.login("beamuser")  # as copied from the web page
    ident = login_catalogue(real_config(), token=token + "\n")
    assert ident.username == "beamuser" and ident.groups == ("p20260123",)
    service = catalogue_service(real_scicat.url)
    assert get_secret(service, token_account("beamuser")) == token
    assert get_secret(service, "beamuser") is None


def test_expired_or_foreign_token_is_refused(short_scicat: RealScicat, scicat_backend: RealScicat) -> None:
    from trayagent.config import Config, validate

    cfg = Config.of(validate({"catalogue": {"kind": "scicat", "url": short_scicat.url}}, "test"), source=None)
    expired = short_scicat.login("beamuser")
    time.sleep(6.5)
    with pytest.raises(AuthError, match="did not accept the token"):
        login_catalogue(cfg, token=expired)
    with pytest.raises(AuthError, match="did not accept the token"):
        login_catalogue(cfg, token="not.a.jwt")
    with pytest.raises(AuthError, match="did not accept the token"):  # signed by another backend
        login_catalogue(cfg, token=scicat_backend.login("beamuser"))
    assert get_secret(catalogue_service(short_scicat.url), CURRENT) is None


def _follow(url: str) -> None:
    """A browser stand-in: GET the OIDC start page and follow the redirects to the loopback callback."""
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 200 and "logged in" in resp.text


def test_oidc_browser_flow_receives_token_on_loopback(scicat: ScicatServer, scicat_config) -> None:
    """Fake: the real backend's OIDC route needs an identity provider, which the suite does not run."""
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
    """Only trayagent's loopback callback is exercised: no SciCat answer is involved."""
    def opener(url: str) -> None:
        callback = parse_qs(urlsplit(url).query)["returnUrl"][0]
        parts = urlsplit(callback)
        forged = f"{parts.scheme}://{parts.netloc}/trayagent/guessed?access-token=x"
        assert requests.get(forged, timeout=10).status_code == 400

    with pytest.raises(AuthError, match="did not finish"):
        from trayagent.catalogue.scicat.auth import oidc_login
        oidc_login(scicat.url, "trayagent", opener, timeout=0.5)


def test_oidc_needs_a_configured_client(real_config) -> None:
    with pytest.raises(ConfigError, match="no OIDC client"):
        login_catalogue(real_config(), oidc=True, opener=lambda url: None)


def test_logout_forgets_secrets(real_scicat: RealScicat, real_config) -> None:
    cfg = real_config()
    login_catalogue(cfg, "beamuser", password="beamuser-pw")
    assert logout_catalogue(cfg) is True
    service = catalogue_service(real_scicat.url)
    assert [get_secret(service, a) for a in ("beamuser", token_account("beamuser"), CURRENT)] == [None] * 3
    assert logout_catalogue(cfg) is False
    with pytest.raises(LoginRequired, match="not logged in"):
        client_for(cfg)


def test_logout_forgets_secrets_and_revokes_the_token(scicat: ScicatServer, scicat_config) -> None:
    """Fake: the real backend's JWTs stay valid after /auth/logout, so only the fake shows the call
    reached the server."""
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
    """Fake: stopping the session's real backend would cost every later test its start-up."""
    cfg = scicat_config()
    login_catalogue(cfg, "alice", password=scicat.users["alice"].password)
    scicat.down()
    try:
        assert logout_catalogue(cfg, "alice") is True
    finally:
        scicat.up()
    assert get_secret(catalogue_service(scicat.url), "alice") is None
