"""The REAL SciCat backend (scicat-backend-next v4.27.0 on SecantusDB) for the test suite.

``../shared/scicat/start-scicat.sh`` (beside the checkout) builds the backend once (``/tmp`` by default,
so a read-only shared folder works) and starts one instance per ``SCICAT_RUN`` folder. The suite keeps
one instance per session (start-up costs seconds), and a second, lazily started one with a short token
lifetime for the expiry tests. Tests isolate themselves with fresh dataset names and sourceFolders.

``ScicatReader`` reads back what trayagent registered with plain ``requests``, as a third-party SciCat
client would: the assertions never trust trayagent's own code to describe the catalogue.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parents[2]  # tests/support/ -> the repository
SCRIPT = REPO.parent / "shared" / "scicat" / "start-scicat.sh"
VERSION = "v4.27.0"

# The functional accounts start-scicat.sh configures (username -> password, group)
ACCOUNTS: dict[str, tuple[str, str]] = {
    "beamuser": ("beamuser-pw", "p20260123"),
    "otheruser": ("otheruser-pw", "p99999"),
    "proposalIngestor": ("proposal-pw", "proposalingestor"),
    "ingestor": ("ingestor-pw", "ingestor"),
    "admin": ("admin-pw", "admin"),
    "noemail": ("noemail-pw", "p20260123"),  # no email address (ours, not a default account)
}


def _accounts_file(path: Path) -> Path:
    """start-scicat.sh's five default accounts, plus ``noemail`` whose email is "n/a" (the backend
    needs some value): SciCat refuses a dataset without a contactEmail address, and some facility
    accounts have none."""
    roles = {"admin": "admin", "ingestor": "ingestor", "proposalIngestor": ["proposalingestor"]}
    accounts = []
    for user, (password, group) in ACCOUNTS.items():
        entry: dict[str, Any] = {"username": user, "password": password, "role": roles.get(user, group),
                                 "global": user in ("admin", "ingestor")}
        entry["email"] = "n/a" if user == "noemail" else f"{user.lower()}@scicat.test"
        accounts.append(entry)
    path.write_text(json.dumps(accounts, indent=1), encoding="utf-8")
    return path


def available() -> str:
    """Why the real backend cannot run here ("" when it can)."""
    if not SCRIPT.is_file():
        return f"the real SciCat backend's start script is missing ({SCRIPT})"
    return ""


@dataclass
class RealScicat:
    """One running instance: its base URL and the folder holding its state and logs."""

    run_dir: Path
    jwt_seconds: int = 3600
    url: str = ""
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def _env(self) -> dict[str, str]:
        accounts = _accounts_file(self.run_dir.parent / f"{self.run_dir.name}-accounts.json")
        return dict(os.environ, SCICAT_RUN=str(self.run_dir), SCICAT_JWT_EXPIRES_IN=str(self.jwt_seconds),
                    SCICAT_ACCOUNTS=str(accounts))

    def start(self) -> RealScicat:
        proc = subprocess.run(["bash", str(SCRIPT)], env=self._env(), capture_output=True, text=True, check=False,
                              timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"start-scicat.sh failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        self.url = proc.stdout.strip().splitlines()[-1]
        return self

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "--stop"], env=self._env(), capture_output=True, timeout=120,
                       check=False)

    @property
    def log(self) -> str:
        path = self.run_dir / "backend.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- plain HTTP, as any SciCat client -------------------------------------------------------
    def login(self, user: str, password: str | None = None) -> str:
        resp = requests.post(f"{self.url}/api/v3/auth/login", timeout=30,
                             json={"username": user, "password": password or ACCOUNTS[user][0]})
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def token(self, user: str) -> str:
        """A token of ``user``: cached where tokens last an hour, fresh where they expire in seconds."""
        if self.jwt_seconds < 600:
            return self.login(user)
        if user not in self._tokens:
            self._tokens[user] = self.login(user)
        return self._tokens[user]

    def reader(self, user: str = "admin") -> ScicatReader:
        return ScicatReader(self.url, self.token(user))

    def add_proposal(self, proposal_id: str, owner_group: str, title: str, **extra: Any) -> dict[str, Any]:
        """A proposal as the facility's user office would import it (the proposal ingestor)."""
        body = {"proposalId": proposal_id, "ownerGroup": owner_group, "title": title,
                "email": "pi@example.org", **extra}
        resp = requests.post(f"{self.url}/api/v3/proposals", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {self.token('proposalIngestor')}"})
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


@dataclass
class ScicatReader:
    """Reads datasets and their files back with plain ``requests`` (admin: sees everything)."""

    url: str
    token: str

    def get(self, path: str, **params: str) -> Any:
        resp = requests.get(f"{self.url}/api/v3{path}", params=params, timeout=60,
                            headers={"Authorization": f"Bearer {self.token}"})
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text[:300]}"
        return resp.json()

    def datasets_in(self, source_folder: str) -> list[dict[str, Any]]:
        return list(self.get("/datasets", filter=json.dumps({"where": {"sourceFolder": source_folder}})))

    def dataset(self, pid: str) -> dict[str, Any]:
        return dict(self.get(f"/datasets/{quote(pid, safe='')}"))

    def blocks(self, pid: str) -> list[dict[str, Any]]:
        return list(self.get(f"/datasets/{quote(pid, safe='')}/origdatablocks"))

    def files(self, pid: str) -> list[dict[str, Any]]:
        """Every dataFileList entry of the dataset, with its block's chkAlg added (a path may repeat)."""
        return [dict(f, chkAlg=b.get("chkAlg")) for b in self.blocks(pid) for f in b["dataFileList"]]


def unique(prefix: str) -> str:
    """A name no other test uses: datasets and sourceFolders stay apart on the shared instance."""
    return f"{prefix}-{secrets.token_hex(4)}"


@contextmanager
def running(run_dir: Path, jwt_seconds: int = 3600) -> Iterator[RealScicat]:
    """Start an instance in ``run_dir``; stop it afterwards even when a test failed."""
    server = RealScicat(run_dir, jwt_seconds)
    try:
        yield server.start()
    finally:
        server.stop()
