"""HTTP to the SciCat backend: one place that turns every answer into data or a clear error.

SciCat answers validation problems with 400 and a NestJS message list, group problems with 403, an
expired JWT with 401, and a proxy in front of it may answer with an HTML page. The engine only needs
to know: is this worth retrying (network, 5xx, half-read body) or must a person act (400, 403, TLS,
wrong URL)? A 401 is handed to the token source once (it may log in again with the keyring password);
a second 401 means the user must log in (``LoginRequired``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

import requests

from ...errors import CatalogueError, LoginRequired

log = logging.getLogger(__name__)

API = "/api/v3"
TIMEOUT = (10.0, 120.0)  # connect, read


class ScicatError(CatalogueError):
    """A SciCat answer that is not a success; ``status`` is the HTTP code (0: no answer at all)."""

    def __init__(self, message: str, hint: str = "", *, status: int = 0, transient: bool = False,
                 server_message: str = "") -> None:
        super().__init__(message, hint, transient=transient)
        self.status = status
        self.server_message = server_message


class TokenSource(Protocol):
    """Gives the current JWT, and a new one after the server rejected ``rejected`` (or raises)."""

    def token(self) -> str: ...

    def renew(self, rejected: str) -> str: ...


def expired(token: str) -> bool:
    """The JWT's ``exp`` has passed (unverified: only the server can verify). SciCat v4.27.0 answers
    an expired token with 403 "Forbidden resource" on routes that also serve anonymous users (e.g.
    POST /origdatablocks), not 401: such a 403 must renew the token, not blame the user's groups."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) <= time.time()
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        return False


def quote_id(value: str) -> str:
    """A pid such as ``20.500.12269/abc`` as one path segment (``/`` -> ``%2F``)."""
    return quote(value, safe="")


def problems(resp: requests.Response) -> list[tuple[str, str]]:
    """The backend's validation problems as ``(property path, text)``.

    v4.27.0 answers in two shapes: NestJS' list of sentences (``"dataFileList.0.property _id should not
    exist"``) and, for datasets, a string holding class-validator's JSON (``[{"property":
    "contactEmail", "constraints": {...}}]``)."""
    try:
        body = resp.json()
    except ValueError:
        return []
    msg = body.get("message") if isinstance(body, dict) else None
    if isinstance(msg, str) and msg.startswith("["):
        try:
            msg = json.loads(msg)
        except ValueError:
            return []
    found: list[tuple[str, str]] = []
    for item in msg if isinstance(msg, list) else []:
        if isinstance(item, dict):
            found += _flatten(item, "")
        elif isinstance(item, str):
            m = re.match(r"^([\w.]+?)\.(property \w+ should not exist|\w+ .*)$", item)
            found.append((m.group(1), m.group(2)) if m else (item.split(" ")[0], item))
    return found


def _flatten(item: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """class-validator's nested error objects as flat ``(path, text)`` pairs."""
    path = f"{prefix}.{item.get('property')}" if prefix else str(item.get("property"))
    found = [(path, str(text)) for text in (item.get("constraints") or {}).values()]
    for child in item.get("children") or []:
        if isinstance(child, dict):
            found += _flatten(child, path)
    return found


_INDEX = re.compile(r"\.\d+(?=\.|$)")
_LABELS = {"dataFileList": "file entries"}


def grouped(found: list[tuple[str, str]]) -> str:
    """One item per distinct problem: 100 file entries refused for the same reason are one item
    ("100 file entries: property _id should not exist"), not 100."""
    paths: dict[tuple[str, str], list[str]] = {}
    for path, text in found:
        paths.setdefault((_INDEX.sub("", path), text), []).append(path)
    items = []
    for (general, text), where in paths.items():
        if len(where) > 1:
            items.append(f"{len(where)} {_LABELS.get(general, f'entries of {general}')}: {text}")
        else:
            items.append(text if text.startswith(where[0] + " ") else f"{where[0]}: {text}")
    return "; ".join(items)


def server_message(resp: requests.Response) -> str:
    """The backend's own explanation (``message`` may be a string or a list), else a short body."""
    found = problems(resp)
    if found:
        return grouped(found)
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return "" if text.lower().startswith(("<!doctype", "<html")) else text[:300]
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error") or ""
        if isinstance(msg, list):
            return "; ".join(str(m) for m in msg)
        return str(msg)
    return str(body)[:300]


def _is_html(resp: requests.Response) -> bool:
    return "html" in resp.headers.get("Content-Type", "").lower() or resp.text.lstrip()[:15].lower() \
        .startswith(("<!doctype", "<html"))


REPORT = ("This is a trayagent bug, not something you can fix: please report it with the log file "
          "(`trayagent logs`). Uploaded files are kept; registration catches up once a fixed trayagent runs.")


def _hint_400(resp: requests.Response, fixable: Mapping[str, str] | None) -> str:
    """What to do about a refused request: the user's to fix only when every property SciCat names
    is one the user sets (``fixable``: property -> where to set it); else a trayagent bug."""
    if fixable is None:
        return "Check the values SciCat names (configuration or dataset options), then run again."
    found = problems(resp)
    tops = {path.split(".")[0] for path, _ in found}
    if found and tops <= set(fixable):
        return "Fix " + "; ".join(dict.fromkeys(fixable[t] for t in sorted(tops))) + \
            ". Uploads go on; registration catches up by itself after the fix."
    return REPORT


def error_for(resp: requests.Response, what: str, fixable: Mapping[str, str] | None = None) -> ScicatError:
    """The error for a non-2xx answer to ``what`` (e.g. "creating the dataset"). ``fixable`` names the
    properties of this request a user sets (property -> where): see ``_hint_400``."""
    code, msg = resp.status_code, server_message(resp)
    said = f": {msg}" if msg else ""
    if code >= 500 or code in (408, 429):
        return ScicatError(f"SciCat failed while {what} (HTTP {code}{said})",
                           "Nothing is lost: registration is retried automatically.",
                           status=code, transient=True, server_message=msg)
    if code == 400:
        return ScicatError(f"SciCat rejected {what}{said or ' (HTTP 400)'}", _hint_400(resp, fixable),
                           status=code, server_message=msg)
    if code == 403:
        return ScicatError(f"SciCat refused {what}: your account lacks the group or right it needs{said}",
                           "Check [catalogue] owner_group against your groups (`trayagent login` lists "
                           "them), or ask the catalogue team for the right.", status=code, server_message=msg)
    if code == 413:
        return ScicatError(f"SciCat refused {what}: the request is larger than the server accepts",
                           "Ask the catalogue team about MAX_FILE_UPLOAD_SIZE.", status=code,
                           server_message=msg)
    if 300 <= code < 400:
        return ScicatError(f"SciCat redirected {what} to {resp.headers.get('Location', '?')}",
                           "Check [catalogue] url: it must be the SciCat backend, not a login or web page.",
                           status=code)
    return ScicatError(f"SciCat refused {what} (HTTP {code}{said})", "", status=code, server_message=msg)


def decode(resp: requests.Response, what: str) -> Any:
    """The JSON of a 2xx answer; an HTML page or a broken body is a clear error, never a crash."""
    if not resp.content:
        return None
    if _is_html(resp):
        raise ScicatError(f"SciCat answered {what} with a web page instead of JSON",
                          "Check [catalogue] url: it must point at the SciCat backend (its /api/v3 answers "
                          "JSON), not at the web frontend or a login portal.", status=resp.status_code)
    try:
        return resp.json()
    except ValueError:
        raise ScicatError(f"SciCat's answer to {what} was cut off or is not JSON",
                          "Retried automatically; if it persists, a proxy may be truncating answers.",
                          status=resp.status_code, transient=True) from None


class ScicatHttp:
    """Authenticated JSON calls to one SciCat backend."""

    def __init__(self, url: str, tokens: TokenSource | None, *, verify: bool | str = True,
                 session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.tokens = tokens
        self.session = session or requests.Session()
        self.session.verify = verify
        self.session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self.session.close()

    def send(self, method: str, path: str, what: str, *, token: str | None = None,
             **kw: Any) -> requests.Response:
        """One request; network and TLS problems become ``ScicatError``."""
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self.session.request(method, self.url + API + path, headers=headers, timeout=TIMEOUT,
                                        allow_redirects=False, **kw)
        except requests.exceptions.SSLError as exc:
            raise ScicatError(f"the TLS certificate of {self.url} could not be verified ({exc})",
                              "Set [catalogue] ca_bundle to your facility's CA file; keep verify_tls on.",
                              ) from None
        except requests.RequestException as exc:
            raise ScicatError(f"SciCat at {self.url} is unreachable ({type(exc).__name__})",
                              "Uploads go on; registration resumes when SciCat answers again.",
                              transient=True) from None
        log.debug("%s %s -> %s", method, path, resp.status_code)
        return resp

    def call(self, method: str, path: str, what: str, *, body: Any = None,
             params: dict[str, str] | None = None, accept: tuple[int, ...] = (),
             fixable: Mapping[str, str] | None = None) -> Any:
        """An authenticated call; returns the decoded JSON. Statuses in ``accept`` raise nothing and
        return ``ScicatError`` instances instead, for callers that handle e.g. 404 themselves.
        ``fixable``: the body's properties a user sets (else a 400 is reported as a trayagent bug)."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        token = self.tokens.token() if self.tokens else None
        resp = self.send(method, path, what, token=token, data=data, params=params, headers=headers)
        if self.tokens and token and (resp.status_code == 401 or resp.status_code == 403 and expired(token)):
            token = self.tokens.renew(token)
            resp = self.send(method, path, what, token=token, data=data, params=params, headers=headers)
        if resp.status_code == 401:
            raise LoginRequired(f"SciCat did not accept your session while {what}",
                                "Run `trayagent login` (registration resumes by itself afterwards).")
        if resp.status_code in accept:
            return error_for(resp, what, fixable)
        if not 200 <= resp.status_code < 300:
            raise error_for(resp, what, fixable)
        return decode(resp, what)
