"""The control API's routes: a thin mapping from HTTP to the agent's actions. The full list is the
API reference (README, "Control API").

Routes are typed against ``AgentApi``, the few actions they need, not against ``Agent``: the agent
imports this module, and this module imports nothing of the agent's.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Protocol
from urllib.parse import unquote

from .. import __version__
from .client import DIALOGS
from .server import ApiError, ControlServer


class AgentApi(Protocol):
    """What the routes call."""

    @property
    def catalogue_kind(self) -> str: ...
    def status(self) -> dict[str, Any]: ...
    def status_changed(self, since: str, timeout: float) -> dict[str, Any]: ...
    def upload(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def sync(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def preview(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def has_dataset(self, dataset_id: int) -> bool: ...
    def dataset_action(self, dataset_id: int, action: str) -> dict[str, Any]: ...
    def dataset_entry(self, dataset_id: int) -> dict[str, Any]: ...
    def wait_dataset(self, dataset_id: int, timeout: float) -> dict[str, Any]: ...
    def pause(self, paused: bool) -> None: ...
    def retry_now(self, dataset_id: int | None = None) -> dict[str, Any]: ...
    def request_dialog(self, name: str, params: dict[str, Any]) -> dict[str, Any]: ...
    def dialog_request(self, request: str) -> dict[str, Any]: ...
    def settings(self) -> dict[str, Any]: ...
    def save_settings(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def test_connection(self, body: dict[str, Any] | None = None) -> dict[str, Any]: ...
    def storage_account(self) -> dict[str, Any]: ...
    def storage_login(self, user: str | None, password: str | None) -> dict[str, Any]: ...
    def login(self, user: str | None, password: str | None, token: str | None) -> dict[str, Any]: ...
    def logout(self) -> bool: ...
    def lookup_proposal(self, proposal_id: str) -> dict[str, str]: ...
    def metadata_template(self) -> dict[str, Any]: ...
    def in_flight(self) -> int: ...
    def stop(self) -> None: ...


def register_routes(server: ControlServer, agent: AgentApi) -> None:
    for group in (_status_routes, _dataset_routes, _dialog_routes, _settings_routes, _catalogue_routes):
        group(server, agent)


def _status_routes(server: ControlServer, agent: AgentApi) -> None:
    r = server.route

    @r("GET", "/api/ping")
    def ping(body: dict[str, Any], m: re.Match[str]) -> Any:
        return {"agent": "trayagent", "version": __version__}

    @r("GET", "/api/status")
    def status(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.status()

    @r("POST", "/api/status/wait")
    def status_wait(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Long poll: the status once it differs from ``since`` (a ``version`` it gave), or after ``timeout``."""
        timeout = body.get("timeout", 25)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise ApiError(400, "timeout must be a number of seconds")
        return agent.status_changed(str(body.get("since") or ""), float(timeout))

    @r("POST", "/api/(pause|resume)")
    def pause(body: dict[str, Any], m: re.Match[str]) -> Any:
        agent.pause(m.group(1) == "pause")
        return {"paused": m.group(1) == "pause"}

    @r("POST", "/api/retry-now")
    def retry_now(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Everything waiting for a retry slot (or for the storage) is tried at once."""
        return agent.retry_now()

    @r("POST", "/api/quit")
    def quit_agent(body: dict[str, Any], m: re.Match[str]) -> Any:
        busy = agent.in_flight()
        if busy and not body.get("force"):
            return {"quit": False, "in_flight": busy}
        threading.Thread(target=agent.stop, daemon=True).start()
        return {"quit": True, "in_flight": busy}


def _dataset_routes(server: ControlServer, agent: AgentApi) -> None:
    r = server.route

    @r("POST", "/api/upload")
    def upload(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.upload(body)

    @r("POST", "/api/sync")
    def sync(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.sync(body)

    @r("GET", "/api/template")
    def template(body: dict[str, Any], m: re.Match[str]) -> Any:
        """The beamline template's fields, for the Dataset dialog's form."""
        return agent.metadata_template()

    @r("POST", "/api/preview")
    def preview(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.preview(body)

    @r("POST", r"/api/datasets/(\d+)/(stop|finalize|retry|pause|resume|open-folder|open-catalogue|cancel)")
    def dataset_action(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dataset_action(_known(agent, m), m.group(2))

    @r("GET", r"/api/datasets/(\d+)")
    def dataset(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dataset_entry(_known(agent, m))

    @r("POST", r"/api/datasets/(\d+)/wait")
    def wait(body: dict[str, Any], m: re.Match[str]) -> Any:
        timeout = body.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise ApiError(400, "timeout must be a number of seconds")
        return agent.wait_dataset(_known(agent, m), float(timeout))


def _known(agent: AgentApi, m: re.Match[str]) -> int:
    wanted = int(m.group(1))
    if not agent.has_dataset(wanted):
        raise ApiError(404, f"no dataset {wanted}")
    return wanted


def _dialog_routes(server: ControlServer, agent: AgentApi) -> None:
    r = server.route

    @r("POST", "/api/open")
    def open_paths(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Paths dropped on the launcher: open the Dataset dialog prefilled with them."""
        paths = [p for p in body.get("paths") or [] if isinstance(p, str)]
        return agent.request_dialog("dataset", {"paths": paths})

    @r("POST", rf"/api/show/({'|'.join(DIALOGS)})")
    def show(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.request_dialog(m.group(1), body)

    @r("POST", "/api/tickets")
    def ticket(body: dict[str, Any], m: re.Match[str]) -> Any:
        """A one-time ticket for a dialog opened in a web browser (see ControlServer.new_ticket)."""
        return {"ticket": server.new_ticket()}

    @r("GET", r"/api/requests/([A-Za-z0-9_-]+)")
    def dialog_request(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dialog_request(m.group(1))


def _settings_routes(server: ControlServer, agent: AgentApi) -> None:
    r = server.route

    @r("GET", "/api/settings")
    def settings(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.settings()

    @r("POST", "/api/settings")
    def save_settings(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Validate and write config.toml, then apply it without a restart."""
        return agent.save_settings(body)

    @r("POST", "/api/settings/test")
    def test_connection(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Test the storage the body's settings describe (else the saved ones), with the typed password."""
        return agent.test_connection(body)


def _catalogue_routes(server: ControlServer, agent: AgentApi) -> None:
    r = server.route

    def scicat_only(what: str) -> None:
        if agent.catalogue_kind != "scicat":
            raise ApiError(404, what)

    @r("GET", "/api/storage")
    def storage(body: dict[str, Any], m: re.Match[str]) -> Any:
        """The storage account as the Login dialog shows it."""
        return agent.storage_account()

    @r("POST", "/api/login")
    def login(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Login from the Login dialog: the storage account (``"account": "storage"``, its password),
        or the catalogue (password or a token copied from SciCat)."""
        if body.get("account") == "storage":
            return agent.storage_login(body.get("user") or None, body.get("password") or None)
        scicat_only("The local catalogue needs no login.")
        return agent.login(body.get("user") or None, body.get("password") or None, body.get("token") or None)

    @r("POST", "/api/logout")
    def logout(body: dict[str, Any], m: re.Match[str]) -> Any:
        scicat_only("The local catalogue needs no login.")
        return {"logged_out": agent.logout()}

    @r("GET", r"/api/proposals/([^/]+)")
    def proposal(body: dict[str, Any], m: re.Match[str]) -> Any:
        scicat_only("proposal lookup needs the SciCat catalogue")
        return agent.lookup_proposal(unquote(m.group(1)))

