"""Logging in to the SciCat catalogue, independent of any user interface.

SciCat hands out JWTs that last an hour and cannot be refreshed. So the agent keeps, in the OS keyring
only (one service per catalogue URL): the password of a local/LDAP account (account ``<user>``) when
the user gave one, the current token (``<user>#token``), and which user is logged in (``#current``,
not a secret but kept with the rest). With a password a stale token is silently replaced; without one
(SSO sites: a token pasted from the web page, or the browser flow) ``LoginRequired`` tells the engine to
pause registration until ``trayagent login`` stores a fresh token.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ...config import Config
from ...errors import AuthError, ConfigError, LoginRequired
from ...secrets.store import catalogue_service, delete_secret, get_secret, set_secret
from .http import API, ScicatError, ScicatHttp, decode, error_for, server_message

log = logging.getLogger(__name__)

CURRENT = "#current"
EXPIRY_MARGIN = 60.0  # renew a token this many seconds before it expires
OIDC_TIMEOUT = 300.0


@dataclass(frozen=True)
class Identity:
    """Who the catalogue says we are."""

    username: str
    email: str
    display_name: str
    groups: tuple[str, ...]


def token_account(user: str) -> str:
    return f"{user}#token"


def tls_verify(cfg: Config) -> bool | str:
    """``requests``' verify argument: the CA bundle if one is configured, else on/off."""
    return cfg.catalogue.ca_bundle or bool(cfg.catalogue.verify_tls)


def catalogue_url(cfg: Config) -> str:
    url = str(cfg.catalogue.url).rstrip("/")
    if cfg.catalogue.kind != "scicat" or not url:
        raise ConfigError("no SciCat catalogue is configured",
                          'Set [catalogue] kind = "scicat" and url = "https://scicat.example.org".')
    return url


def token_lifetime(token: str) -> tuple[float, float] | None:
    """``(iat, exp)`` of a JWT (not verified: only the server can do that), if readable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
        return float(claims.get("iat", exp - 3600)), exp
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _fresh(token: str | None) -> bool:
    """Not about to expire: renewing a little early spares a 401 in the middle of a large request."""
    if not token:
        return False
    span = token_lifetime(token)
    if span is None:
        return True
    iat, exp = span
    return exp - min(EXPIRY_MARGIN, (exp - iat) / 10) > time.time()


# -- talking to the auth routes ---------------------------------------------------------------------
def password_login(http: ScicatHttp, route: str, user: str, password: str) -> str:
    """POST /auth/login (local, functional accounts) or /auth/ldap; returns the JWT."""
    path = "/auth/ldap" if route == "ldap" else "/auth/login"
    resp = http.send("POST", path, "logging in", json={"username": user, "password": password})
    if resp.status_code == 401:
        raise AuthError(f"SciCat did not accept the password of {user!r} ({route} account)",
                        "Check the user name and password" + (" or set [catalogue] auth = \"ldap\" for a "
                        "facility (LDAP) account." if route != "ldap" else "; for a local or functional "
                        "account set [catalogue] auth = \"local\"."))
    if resp.status_code >= 500:
        raise _login_failed(resp, route)
    if not 200 <= resp.status_code < 300:
        raise error_for(resp, "logging in")
    body = decode(resp, "logging in")
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ScicatError("SciCat's login answer holds no access_token",
                          "Check [catalogue] url points at the SciCat backend.")
    return token


def _login_failed(resp: Any, route: str) -> ScicatError:
    """A server error on a login route: nothing was registered yet, so "retried automatically" would
    be false comfort. SciCat answers 500 on /auth/ldap when the site has no LDAP configured."""
    said = server_message(resp)
    where = "LDAP login (/auth/ldap)" if route == "ldap" else "login (/auth/login)"
    hint = ("If your account is a local or functional one, set [catalogue] auth = \"local\"; "
            "otherwise try again later or tell the catalogue team (their server logs say why)."
            if route == "ldap" else
            "Try again later, or tell the catalogue team (their server logs say why).")
    return ScicatError(f"SciCat failed during the {where} (HTTP {resp.status_code}"
                       f"{': ' + said if said else ''})", hint, status=resp.status_code, transient=True,
                       server_message=said)


def _get(http: ScicatHttp, path: str, token: str, what: str) -> Any:
    resp = http.send("GET", path, what, token=token)
    if resp.status_code == 401:
        raise AuthError("SciCat did not accept the token (expired or for another catalogue?)",
                        "Tokens last one hour: copy a fresh one from the SciCat web page, or log in again.")
    if resp.status_code >= 500:  # during a login nothing is queued: "retried automatically" would be false
        said = server_message(resp)
        raise ScicatError(f"SciCat failed while {what} (HTTP {resp.status_code}{': ' + said if said else ''})",
                          "Try `trayagent login` again later, or tell the catalogue team (their server logs "
                          "say why).", status=resp.status_code, transient=True, server_message=said)
    if not 200 <= resp.status_code < 300:
        raise error_for(resp, what)
    return decode(resp, what)


def parse_identity(ident: Any) -> Identity | None:
    """An ``Identity`` from /users/my/identity, or None (functional accounts have no identity)."""
    profile = ident.get("profile") if isinstance(ident, dict) else None
    if not isinstance(profile, dict) or not profile.get("username"):
        return None
    return Identity(str(profile["username"]), str(profile.get("email") or ""),
                    str(profile.get("displayName") or profile["username"]),
                    tuple(str(g) for g in profile.get("accessGroups") or ()))


def parse_whoami(who: Any) -> Identity:
    if not isinstance(who, dict) or not who.get("username"):
        raise ScicatError("SciCat's /auth/whoami answer names no user", "Check [catalogue] url.")
    groups = who.get("currentGroups") or who.get("accessGroups") or ()
    return Identity(str(who["username"]), str(who.get("email") or ""), str(who["username"]),
                    tuple(str(g) for g in groups))


def fetch_identity(http: ScicatHttp, token: str) -> Identity:
    """Profile from /users/my/identity; functional accounts have none, so /auth/whoami fills in."""
    try:
        found = parse_identity(_get(http, "/users/my/identity", token, "reading your identity"))
    except ScicatError as exc:
        if exc.transient:
            raise
        found = None
    return found or parse_whoami(_get(http, "/auth/whoami", token, "reading who you are"))


# -- the OIDC browser flow --------------------------------------------------------------------------
class _Callback(BaseHTTPRequestHandler):
    """Receives the redirect SciCat sends after the identity provider: ``?access-token=...``."""

    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        ours = parts.path == self.server.secret_path or \
            query.get("returnUrl", [""])[0] == self.server.callback_url
        token = query.get("access-token", [""])[0]
        if not ours or not token:
            self._answer(400, "This page does not belong to the running trayagent login.")
            return
        self.server.token = token
        self._answer(200, "trayagent is logged in to SciCat. You may close this window.")
        self.server.done.set()

    def _answer(self, code: int, text: str) -> None:
        body = f"<!doctype html><title>trayagent</title><p>{text}</p>".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the token: never log it
        return


class _CallbackServer(HTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Callback)
        self.secret_path = f"/trayagent/{secrets.token_urlsafe(24)}"
        self.callback_url = f"http://127.0.0.1:{self.server_port}{self.secret_path}"
        self.token: str | None = None
        self.done = threading.Event()


def _open_browser(url: str) -> None:
    if not webbrowser.open(url):
        print(f"Open this address in a browser to log in:\n  {url}")


def oidc_login(url: str, client: str, opener: Callable[[str], Any] | None = None,
               timeout: float = OIDC_TIMEOUT) -> str:
    """Open SciCat's OIDC login and wait for the token on a one-time loopback address."""
    server = _CallbackServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        start = f"{url}{API}/auth/oidc?client={quote(client, safe='')}&returnUrl=" \
                f"{quote(server.callback_url, safe='')}"
        (opener or _open_browser)(start)
        if not server.done.wait(timeout) or not server.token:
            raise AuthError("the browser login did not finish in time",
                            "Log in through the browser again, or paste a token copied from SciCat.",
                            field="secret")
        return server.token
    finally:
        server.shutdown()
        server.server_close()


# -- the token source the catalogue uses ------------------------------------------------------------
class TokenKeeper:
    """Hands out a valid JWT; renews it with the keyring password, else raises ``LoginRequired``."""

    def __init__(self, http: ScicatHttp, user: str, route: str) -> None:
        self.http = http
        self.user = user
        self.route = route
        self.service = catalogue_service(http.url)
        self._token: str | None = None
        self._rejected: set[str] = set()
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if _fresh(self._token) and self._token not in self._rejected:
                return self._token  # type: ignore[return-value]
            stored = get_secret(self.service, token_account(self.user))
            if _fresh(stored) and stored not in self._rejected:
                self._token = stored
                return stored  # type: ignore[return-value]
            return self._login_again()

    def renew(self, rejected: str) -> str:
        with self._lock:
            self._rejected.add(rejected)
            self._token = None
        return self.token()

    def _login_again(self) -> str:
        password = get_secret(self.service, self.user)
        if not password:
            raise LoginRequired(f"your SciCat session ({self.user}) has expired; SciCat tokens last an hour",
                                "Run `trayagent login` (uploads go on; registration catches up afterwards).")
        try:
            token = password_login(self.http, self.route, self.user, password)
        except ScicatError:
            raise
        except AuthError as exc:
            raise LoginRequired(exc.message, "Run `trayagent login` with your current password.") from None
        set_secret(self.service, token_account(self.user), token)
        log.info("logged in to SciCat again as %s (token renewed)", self.user)
        self._token = token
        return token


def current_user(url: str) -> str | None:
    return get_secret(catalogue_service(url), CURRENT)


def client_for(cfg: Config, user: str | None = None) -> tuple[ScicatHttp, TokenKeeper]:
    """An authenticated client for the configured catalogue (the engine's, with re-login on 401)."""
    url = catalogue_url(cfg)
    user = user or current_user(url)
    if not user:
        raise LoginRequired(f"not logged in to SciCat at {url}",
                            "Run `trayagent login` (uploads go on; registration waits for the login).")
    http = ScicatHttp(url, None, verify=tls_verify(cfg))
    keeper = TokenKeeper(http, user, cfg.catalogue.auth)
    http.tokens = keeper
    return http, keeper


# -- what the CLI calls ---------------------------------------------------------------------------
def login_catalogue(cfg: Config, user: str | None = None, password: str | None = None,
                    token: str | None = None, oidc: bool = False,
                    opener: Callable[[str], Any] | None = None) -> Identity:
    """Log in one of three ways, remember the secret(s) in the keyring, return who we are."""
    url = catalogue_url(cfg)
    http = ScicatHttp(url, None, verify=tls_verify(cfg))
    try:
        if password is not None:
            if not user:
                raise ConfigError("no SciCat user name", "Give your SciCat user name.", field="user")
            token = password_login(http, cfg.catalogue.auth, user, password)
        elif oidc:
            if not cfg.catalogue.oidc_client:
                raise ConfigError("this site has no OIDC client configured for trayagent",
                                  "Set [catalogue] oidc_client, or paste a token copied from the SciCat "
                                  "web page.", field="secret")
            token = oidc_login(url, cfg.catalogue.oidc_client, opener)
        if not token:
            raise ConfigError("no password or token given",
                              "Give a password or a token, or log in through the browser.", field="secret")
        token = token.strip()
        ident = fetch_identity(http, token)
        if user and password is None and user != ident.username:
            log.info("the token belongs to %s, not %s", ident.username, user)
        service = catalogue_service(url)
        if password is not None:
            set_secret(service, ident.username, password)
        set_secret(service, token_account(ident.username), token)
        set_secret(service, CURRENT, ident.username)
        return ident
    finally:
        http.close()


def logout_catalogue(cfg: Config, user: str | None = None) -> bool:
    """Forget the password and token (and tell SciCat, best effort). False: nothing was stored."""
    url = catalogue_url(cfg)
    service = catalogue_service(url)
    current = get_secret(service, CURRENT)
    user = user or current
    if not user:
        return False
    token = get_secret(service, token_account(user))
    if token:
        http = ScicatHttp(url, None, verify=tls_verify(cfg))
        try:
            http.send("POST", "/auth/logout", "logging out", token=token)
        except ScicatError as exc:
            log.info("SciCat logout not confirmed (%s); the token expires within the hour", exc.message)
        finally:
            http.close()
    removed = delete_secret(service, user)
    removed |= delete_secret(service, token_account(user))
    if current == user:
        delete_secret(service, CURRENT)
    return removed
