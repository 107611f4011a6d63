"""The control API's routes: a thin mapping from HTTP to ``Agent`` methods. The full list is the
API reference (README, "Control API")."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import SCHEMA, dump_config, load_config, validate
from ..queue import QueueError
from .server import ApiError

if TYPE_CHECKING:
    from .agent import Agent

DIALOGS = ("dataset", "activity", "login", "settings")


def register_routes(agent: Agent) -> None:
    r = agent.server.route

    @r("GET", "/api/ping")
    def ping(body: dict[str, Any], m: re.Match[str]) -> Any:
        return {"agent": "trayagent", "version": __version__}

    @r("GET", "/api/status")
    def status(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.status()

    @r("POST", "/api/upload")
    def upload(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.upload(body)

    @r("POST", "/api/sync")
    def sync(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.sync(body)

    @r("POST", "/api/preview")
    def preview(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.preview(body)

    @r("POST", r"/api/datasets/(\d+)/(stop|finalize|retry)")
    def dataset_action(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dataset_action(int(m.group(1)), m.group(2))

    @r("GET", r"/api/datasets/(\d+)")
    def dataset(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dataset_entry(_known(m))

    @r("POST", r"/api/datasets/(\d+)/wait")
    def wait(body: dict[str, Any], m: re.Match[str]) -> Any:
        timeout = body.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise ApiError(400, "timeout must be a number of seconds")
        return agent.wait_dataset(_known(m), float(timeout))

    def _known(m: re.Match[str]) -> int:
        wanted = int(m.group(1))
        try:
            agent.uploader.queue.dataset(wanted)
        except QueueError:
            raise ApiError(404, f"no dataset {wanted}") from None
        return wanted

    @r("POST", "/api/(pause|resume)")
    def pause(body: dict[str, Any], m: re.Match[str]) -> Any:
        agent.pause(m.group(1) == "pause")
        return {"paused": m.group(1) == "pause"}

    @r("POST", "/api/open")
    def open_paths(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Paths dropped on the launcher: open the Dataset dialog prefilled with them."""
        paths = [p for p in body.get("paths") or [] if isinstance(p, str)]
        return show_dialog("dataset", {"paths": paths})

    @r("POST", r"/api/show/(dataset|activity|login|settings)")
    def show(body: dict[str, Any], m: re.Match[str]) -> Any:
        return show_dialog(m.group(1), body)

    def show_dialog(name: str, params: dict[str, Any]) -> dict[str, Any]:
        return agent.request_dialog(name, params)

    @r("GET", r"/api/requests/([A-Za-z0-9_-]+)")
    def dialog_request(body: dict[str, Any], m: re.Match[str]) -> Any:
        return agent.dialog_requests.get(m.group(1), {})

    @r("GET", "/api/settings")
    def settings(body: dict[str, Any], m: re.Match[str]) -> Any:
        from ..platform.autostart import autostart

        return {"settings": agent.cfg.as_dict(), "autostart": autostart().enabled(),
                "config_file": str(agent.cfg.source or agent.paths.config_file)}

    @r("POST", "/api/settings")
    def save_settings(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Validate and write config.toml; storage and transfer changes apply on the next start."""
        from ..platform.autostart import autostart

        sections = body.get("settings") or {}
        validate({k: v for k, v in sections.items() if k in SCHEMA}, "settings")
        path = agent.cfg.source or agent.paths.config_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_config(sections), encoding="utf-8")
        if "autostart" in body:
            autostart().set(bool(body["autostart"]))
        if bwlimit := sections.get("transfer", {}).get("bwlimit"):
            agent.uploader.engine.transfer.daemon.set_bwlimit(str(bwlimit))
        agent.cfg = load_config(agent.paths, path)
        return {"saved": str(path), "restart_needed": True}

    @r("POST", "/api/settings/test")
    def test_connection(body: dict[str, Any], m: re.Match[str]) -> Any:
        transfer = agent.uploader.engine.transfer
        try:
            transfer.probe()
        except Exception as exc:  # noqa: BLE001 - reported to the user as the test result
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "storage": transfer.target.display, "hashes": transfer.hash_types()}

    def scicat_only() -> None:
        if agent.cfg.catalogue.kind != "scicat":
            raise ApiError(404, "The local catalogue needs no login.")

    @r("POST", "/api/login")
    def login(body: dict[str, Any], m: re.Match[str]) -> Any:
        """Catalogue login from the Login dialog: password or a token copied from SciCat."""
        from ..catalogue.scicat.auth import login_catalogue
        from ..errors import AuthError

        scicat_only()
        try:
            ident = login_catalogue(agent.cfg, body.get("user") or None, password=body.get("password") or None,
                                    token=body.get("token") or None)
        except AuthError as exc:
            raise ApiError(401, exc.message, exc.hint) from None
        agent.logged_in()
        return {"user": ident.username, "email": ident.email, "name": ident.display_name,
                "groups": list(ident.groups)}

    @r("POST", "/api/logout")
    def logout(body: dict[str, Any], m: re.Match[str]) -> Any:
        scicat_only()
        return {"logged_out": agent.logout()}

    @r("GET", r"/api/proposals/([^/]+)")
    def proposal(body: dict[str, Any], m: re.Match[str]) -> Any:
        from urllib.parse import unquote

        if agent.cfg.catalogue.kind != "scicat":
            raise ApiError(404, "proposal lookup needs the SciCat catalogue")
        return agent.uploader.catalogue.lookup_proposal(unquote(m.group(1)))  # type: ignore[attr-defined]

    @r("POST", "/api/quit")
    def quit_agent(body: dict[str, Any], m: re.Match[str]) -> Any:
        busy = agent.in_flight()
        if busy and not body.get("force"):
            return {"quit": False, "in_flight": busy}
        import threading

        threading.Thread(target=agent.stop, daemon=True).start()
        return {"quit": True, "in_flight": busy}
