"""A contract fake of the SciCat backend, v4.x (API v3 routes), as captured by scicat-sdk-py 5.3.x.

Why a fake: the real backend needs MongoDB, which cannot run here. So this is a real HTTP server on
127.0.0.1 (stdlib ``ThreadingHTTPServer``, one thread per request) that follows the backend's contract
field by field: every request body is validated with the SDK's own pydantic models (the backend's
OpenAPI DTOs) and unknown properties are rejected with 400, as the backend's ``forbidNonWhitelisted``
does. JWTs are HS256 with a configurable lifetime; ownerGroup membership is enforced (403); bodies over
the limit get 413; pids contain a ``/`` that clients must encode as ``%2F``.

Tests steer it: ``add_user``, ``issue_token`` (a token "copied from the web page"), ``register_oidc``,
``fail(kind, times)`` (500, HTML pages, truncated JSON), ``down()``/``up()`` (stop listening, same
port), and read ``counts`` (requests per route) and the stored ``datasets``/``blocks``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import typing
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from pydantic import BaseModel, ValidationError
from scicat_sdk_py.models import (
    CreateOrigDatablockDto,
    CreateProposalDto,
    CreateRawDatasetObsoleteDto,
    CredentialsDto,
    PartialUpdateOrigDatablockDto,
    PartialUpdateRawDatasetObsoleteDto,
)

BACKEND_VERSION = "v4.x (scicat-sdk-py 5.3.x)"
PID_PREFIX = "20.500.12269"


@dataclass
class User:
    username: str
    password: str
    groups: list[str]
    email: str = ""
    display_name: str = ""
    route: str = "local"  # "local" (/auth/login) or "ldap" (/auth/ldap)
    admin: bool = False
    functional: bool = False  # functional accounts have no user identity
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


class Reply(Exception):
    """Raised by a route to answer with ``status`` and a JSON body (or raw bytes)."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: Any) -> Reply:
    names = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
             413: "Payload Too Large"}
    return Reply(status, {"statusCode": status, "message": message, "error": names.get(status, "Error")})


# -- validation as the backend's ValidationPipe does it ---------------------------------------------
def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def unknown_properties(model: type[BaseModel], data: Any, prefix: str = "") -> list[str]:
    """Every property not declared (by its JSON name) in ``model``, nested models included."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = [f"property {prefix}{key} should not exist" for key in data if key not in fields]
    for key, f in fields.items():
        for sub in _models_in(f.annotation):
            values = data.get(key)
            items = values if isinstance(values, list) else [values]
            for i, item in enumerate(items):
                where = f"{prefix}{key}.{i}." if isinstance(values, list) else f"{prefix}{key}."
                problems += unknown_properties(sub, item, where)
    return problems


def validate(model: type[BaseModel], data: Any) -> None:
    if not isinstance(data, dict):
        raise _error(400, ["body must be a JSON object"])
    problems = unknown_properties(model, data)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        problems += [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise _error(400, problems)


# -- JWT -----------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ScicatServer:
    """The fake backend; use as a context manager (``url`` is the base, e.g. http://127.0.0.1:PORT)."""

    def __init__(self, token_lifetime: float = 3600, body_limit: int = 16 << 20) -> None:
        self.token_lifetime = token_lifetime
        self.body_limit = body_limit
        self.key = secrets.token_bytes(32)
        self.users: dict[str, User] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, dict[str, Any]] = {}
        self.proposals: dict[str, dict[str, Any]] = {}
        self.oidc_clients: dict[str, str] = {}
        self.oidc_user = ""
        self.counts: Counter[str] = Counter()
        self.revoked: set[str] = set()
        self.bugs: list[str] = []
        self._fault: tuple[str, int | None, str] | None = None
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        handler = type("Handler", (_Handler,), {"app": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        httpd.daemon_threads = True
        self.port = httpd.server_port
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def down(self) -> None:
        """Stop listening (connections are refused) until ``up()``; state is kept."""
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- steering -------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, groups: list[str], **kw: Any) -> User:
        kw.setdefault("email", f"{username}@example.org")
        kw.setdefault("display_name", username.title())
        user = User(username, password, groups, **kw)
        self.users[username] = user
        return user

    def add_proposal(self, proposal_id: str, owner_group: str, title: str, **kw: Any) -> None:
        self.proposals[proposal_id] = {"proposalId": proposal_id, "ownerGroup": owner_group, "title": title,
                                       "email": kw.pop("email", "pi@example.org"), "accessGroups": [],
                                       "isPublished": False, "type": "Default Proposal", **kw}

    def register_oidc(self, client: str, success_url: str, user: str) -> None:
        self.oidc_clients[client], self.oidc_user = success_url, user

    def fail(self, kind: str | None, times: int | None = None, path: str = "") -> None:
        """``kind``: "500", "html502" (proxy page), "html200" (web page), "truncate" (done, but the answer
        is cut off); None: healthy.
        ``times``: how many matching requests fail (None: all); ``path``: only paths containing it."""
        with self._lock:
            self._fault = (kind, times, path) if kind else None

    def issue_token(self, username: str, lifetime: float | None = None) -> str:
        user = self.users[username]
        now = time.time()
        claims = {"_id": user.id, "username": user.username, "email": user.email,
                  "currentGroups": user.groups, "iat": int(now),
                  "exp": now + (self.token_lifetime if lifetime is None else lifetime),
                  "jti": uuid.uuid4().hex}
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims).encode())
        sig = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"

    def files_of(self, pid: str) -> list[dict[str, Any]]:
        return [f for b in self.blocks.values() if b["datasetId"] == pid for f in b["dataFileList"]]

    # -- request plumbing -----------------------------------------------------------------------
    def take_fault(self, path: str) -> str | None:
        with self._lock:
            if not self._fault or self._fault[2] not in path:
                return None
            kind, times, where = self._fault
            if times is not None:
                self._fault = (kind, times - 1, where) if times > 1 else None
            return kind

    def user_of(self, headers: Any) -> User:
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        try:
            head, body, sig = token.split(".")
            good = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            claims = json.loads(_unb64(body))
            expired = float(claims["exp"]) < time.time()
            user = self.users[claims["username"]]
        except (ValueError, KeyError, TypeError):
            raise _error(401, "Unauthorized") from None
        if not hmac.compare_digest(good, _unb64(sig)) or expired or token in self.revoked:
            raise _error(401, "Unauthorized")
        return user

    def route(self, method: str, path: str, query: dict[str, str], body: Any, headers: Any) -> Reply:
        parts = [unquote(p) for p in path.removeprefix("/api/v3/").split("/")]
        literal = parts[0] in ("auth", "users", "health")
        name = "/".join(p if literal or i % 2 == 0 else "{id}" for i, p in enumerate(parts))
        self.counts[f"{method} /{name}"] += 1
        table = _ROUTES.get((method, len(parts), parts[0], parts[2] if len(parts) > 2 else ""))
        if table is None:
            raise _error(404, f"Cannot {method} {path}")
        with self._lock:
            return table(self, parts, query, body, headers)


class _Handler(BaseHTTPRequestHandler):
    app: ScicatServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if length > self.app.body_limit:
                raise _error(413, "request entity too large")
            fault = self.app.take_fault(parts.path)
            if fault and fault != "truncate":
                self._fault(fault)
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise _error(400, "Unexpected token in JSON") from None
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            reply = self.app.route(method, parts.path, query, body, self.headers)
            if fault:  # the request took effect; its answer is cut off (a dropped proxy connection)
                reply.body = json.dumps(reply.body).encode()[:20]
        except Reply as r:
            reply = r
        except Exception as exc:  # noqa: BLE001 (a bug in the fake: answer, and let the test see it)
            self.app.bugs.append(repr(exc))
            reply = Reply(500, {"statusCode": 500, "message": f"fake server bug: {exc!r}"})
        self._send(reply.status, reply.body, reply.headers)

    def _fault(self, kind: str) -> None:
        page = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
        if kind == "500":
            self._send(500, {"statusCode": 500, "message": "Internal server error"})
        elif kind.startswith("html"):
            self._send(502 if kind == "html502" else 200, page, {"Content-Type": "text/html"})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")


# -- routes ---------------------------------------------------------------------------------------
def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _login(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    validate(CredentialsDto, body)
    route = "ldap" if parts[1] == "ldap" else "local"
    user = s.users.get(body["username"])
    if user is None or user.route != route or not hmac.compare_digest(user.password, body["password"]):
        raise _error(401, "Unauthorized")
    token = s.issue_token(user.username)
    return Reply(201, {"access_token": token, "id": token, "expires_in": s.token_lifetime,
                       "ttl": s.token_lifetime, "created": _now(), "userId": user.id,
                       "user": {"id": user.id, "username": user.username, "email": user.email,
                                "authStrategy": route}})


def _logout(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    s.user_of(h)
    s.revoked.add(h["Authorization"][7:])
    return Reply(201, {})


def _whoami(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    return Reply(200, {"_id": u.id, "username": u.username, "email": u.email, "currentGroups": u.groups})


def _identity(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    if u.functional:
        return Reply(200, None)
    return Reply(200, {"authStrategy": u.route, "created": _now(), "modified": _now(), "credentials": {},
                       "externalId": u.username, "provider": u.route, "userId": u.id,
                       "profile": {"displayName": u.display_name, "email": u.email, "username": u.username,
                                   "id": u.id, "accessGroups": u.groups}})


def _oidc(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    success = s.oidc_clients.get(q.get("client", ""))
    if success is None:
        raise _error(400, f"unknown OIDC client {q.get('client')!r}")
    user = s.users[s.oidc_user]
    params = {"access-token": s.issue_token(user.username), "user-id": user.id,
              "returnUrl": q.get("returnUrl", "")}
    sep = "&" if "?" in success else "?"
    return Reply(302, None, {"Location": f"{success}{sep}{urlencode(params)}"})


def _can_read(u: User, item: dict[str, Any]) -> bool:
    shared = set(item.get("accessGroups") or []) & set(u.groups)
    return u.admin or item["ownerGroup"] in u.groups or bool(shared)


def _proposal_get(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    p = s.proposals.get(parts[1])
    if p is None:
        raise _error(404, "Proposal not found")
    if not _can_read(u, p):
        raise _error(403, "Forbidden resource")
    return Reply(200, p)


def _proposal_post(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    validate(CreateProposalDto, body)
    if not u.admin:
        raise _error(403, "Forbidden resource")
    if body["proposalId"] in s.proposals:
        raise _error(409, "Proposal already exists")
    s.proposals[body["proposalId"]] = {"accessGroups": [], "isPublished": False, "type": "Default Proposal",
                                       **body}
    return Reply(201, s.proposals[body["proposalId"]])


def _dataset_find(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    flt = json.loads(q.get("filter") or "{}")
    where, fields = flt.get("where") or {}, flt.get("fields")
    found = [d for d in s.datasets.values()
             if _can_read(u, d) and all(d.get(k) == v for k, v in where.items())]
    if fields:
        keep = [k for k, on in fields.items() if on] if isinstance(fields, dict) else list(fields)
        found = [{k: d[k] for k in keep if k in d} for d in found]
    return Reply(200, found)


def _dataset_create(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    validate(CreateRawDatasetObsoleteDto, body)
    if body["type"] != "raw":
        raise _error(400, ["type must be raw for this route in the fake"])
    if body["ownerGroup"] not in u.groups or "pid" in body:
        raise _error(403, "Forbidden resource")
    pid = f"{PID_PREFIX}/{uuid.uuid4()}"
    s.datasets[pid] = {**body, "pid": pid, "createdBy": u.username, "createdAt": _now(), "version": "v3"}
    return Reply(201, s.datasets[pid])


def _readable(u: User, item: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    """The backend's lookup by id: 404 with its message when absent, 403 when not the user's."""
    if item is None:
        raise _error(404, missing)
    if not _can_read(u, item):
        raise _error(403, "Forbidden resource")
    return item


def _dataset(s: ScicatServer, u: User, pid: str) -> dict[str, Any]:
    return _readable(u, s.datasets.get(pid), f"Dataset {pid} not found")


def _dataset_get(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    return Reply(200, _dataset(s, s.user_of(h), parts[1]))


def _dataset_patch(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    return Reply(200, _patch_owned(u, _dataset(s, u, parts[1]), PartialUpdateRawDatasetObsoleteDto, body))


def _patch_owned(u: User, item: dict[str, Any], dto: Any, body: Any) -> dict[str, Any]:
    """PATCH semantics of the backend: validated body, owner group only, top-level fields replaced
    wholesale (arrays too, as its $set does)."""
    validate(dto, body)
    if item["ownerGroup"] not in u.groups:
        raise _error(403, "Forbidden resource")
    item.update(body)
    return item


def _dataset_blocks(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    _dataset(s, s.user_of(h), parts[1])
    return Reply(200, [b for b in s.blocks.values() if b["datasetId"] == parts[1]])


def _recount(s: ScicatServer, pid: str) -> None:
    files = s.files_of(pid)
    s.datasets[pid].update(size=sum(f["size"] for f in files), numberOfFiles=len(files))


def _block_create(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    validate(CreateOrigDatablockDto, body)
    d = s.datasets.get(body["datasetId"])
    if d is None:
        raise _error(400, [f"dataset {body['datasetId']} does not exist"])
    if d["ownerGroup"] not in u.groups:
        raise _error(403, "Forbidden resource")
    bid = uuid.uuid4().hex
    s.blocks[bid] = {"ownerGroup": d["ownerGroup"], "accessGroups": d.get("accessGroups") or [], **body,
                     "_id": bid, "createdBy": u.username, "createdAt": _now()}
    _recount(s, d["pid"])
    return Reply(201, s.blocks[bid])


def _block(s: ScicatServer, u: User, bid: str) -> dict[str, Any]:
    return _readable(u, s.blocks.get(bid), "OrigDatablock not found")


def _block_get(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    return Reply(200, _block(s, s.user_of(h), parts[1]))


def _block_patch(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    u = s.user_of(h)
    b = _patch_owned(u, _block(s, u, parts[1]), PartialUpdateOrigDatablockDto, body)
    _recount(s, b["datasetId"])
    return Reply(200, b)


def _health(s: ScicatServer, parts: list[str], q: dict[str, str], body: Any, h: Any) -> Reply:
    return Reply(200, {"status": "ok"})


_Route = typing.Callable[[ScicatServer, list[str], dict[str, str], Any, Any], Reply]
_ROUTES: dict[tuple[str, int, str, str], _Route] = {
    ("POST", 2, "auth", ""): lambda s, p, q, b, h: (_logout if p[1] == "logout" else _login)(s, p, q, b, h),
    ("GET", 2, "auth", ""): lambda s, p, q, b, h: (_whoami if p[1] == "whoami" else _oidc)(s, p, q, b, h),
    ("GET", 3, "users", "identity"): _identity,
    ("GET", 1, "health", ""): _health,
    ("GET", 2, "proposals", ""): _proposal_get,
    ("POST", 1, "proposals", ""): _proposal_post,
    ("GET", 1, "datasets", ""): _dataset_find,
    ("POST", 1, "datasets", ""): _dataset_create,
    ("GET", 2, "datasets", ""): _dataset_get,
    ("PATCH", 2, "datasets", ""): _dataset_patch,
    ("GET", 3, "datasets", "origdatablocks"): _dataset_blocks,
    ("POST", 1, "origdatablocks", ""): _block_create,
    ("GET", 2, "origdatablocks", ""): _block_get,
    ("PATCH", 2, "origdatablocks", ""): _block_patch,
}
