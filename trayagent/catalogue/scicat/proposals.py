"""Proposals: what a SciCat proposal tells a new dataset (PI, owning group, title).

Facilities import proposals from their user office, so the uploader normally only reads them. Creating
one is opt-in (``[catalogue] create_proposals``) because only admins or proposal groups may, and a
typo in ``--proposal`` should not silently create a proposal.
"""

from __future__ import annotations

import logging
from typing import Any

from ...config import is_email
from ...errors import CatalogueError
from ..base import DatasetSpec
from .auth import Identity
from .http import ScicatError, ScicatHttp, quote_id

log = logging.getLogger(__name__)


def _pi(p: dict[str, Any]) -> str:
    for first, last, email in (("pi_firstname", "pi_lastname", "pi_email"),
                               ("firstname", "lastname", "email")):
        name = f"{p.get(first) or ''} {p.get(last) or ''}".strip()
        if name or p.get(email):
            return name or str(p[email])
    return ""


def facts_of(p: dict[str, Any]) -> dict[str, str]:
    facts = {"pi": _pi(p), "ownerGroup": str(p.get("ownerGroup") or ""), "title": str(p.get("title") or ""),
             "email": str(p.get("email") or "")}
    return {k: v for k, v in facts.items() if v}


def proposal_facts(http: ScicatHttp, spec: DatasetSpec, ident: Identity, owner_group: str,
                   create: bool, contact_email: str = "") -> dict[str, str]:
    """The proposal's PI, ownerGroup and title; creates the proposal only when allowed and asked to."""
    pid = str(spec.proposal)
    got = http.call("GET", f"/proposals/{quote_id(pid)}", f"reading proposal {pid}", accept=(403, 404))
    if isinstance(got, dict):
        return facts_of(got)
    if isinstance(got, ScicatError) and got.status == 403:
        raise CatalogueError(f"your SciCat account may not read proposal {pid} "
                             f"(your groups: {', '.join(ident.groups) or 'none'})",
                             "Check the proposal id, or ask the proposal's PI or the catalogue team to add "
                             "you to the proposal's group.", field="proposal")
    if not create:
        raise CatalogueError(f"proposal {pid} does not exist in SciCat",
                             "Check the proposal id; if your account may create proposals, set "
                             "[catalogue] create_proposals = true.", field="proposal")
    return _create(http, spec, ident, owner_group, contact_email)


def _email(ident: Identity, contact_email: str, pid: str) -> str:
    """A proposal's ``email`` must be an address (SciCat refuses e.g. "unknown")."""
    for email in (ident.email, contact_email):
        if email and is_email(email):
            return email
    raise CatalogueError(f"SciCat needs an email address to create proposal {pid}, and your account "
                         f"({ident.username}) has none",
                         "Set [catalogue] contact_email in the configuration file.")


def _create(http: ScicatHttp, spec: DatasetSpec, ident: Identity, owner_group: str,
            contact_email: str) -> dict[str, str]:
    pid = str(spec.proposal)
    group = owner_group or (ident.groups[0] if ident.groups else "")
    body = {"proposalId": pid, "title": spec.investigation_description or spec.name,
            "email": _email(ident, contact_email, pid), "ownerGroup": group}
    made = http.call("POST", "/proposals", f"creating proposal {pid}", body=body, accept=(403, 409),
                     fixable={"email": "[catalogue] contact_email", "proposalId": "the proposal id",
                              "title": "the investigation description", "ownerGroup": "[catalogue] owner_group"})
    if isinstance(made, ScicatError) and made.status == 403:
        raise CatalogueError(f"your SciCat account may not create proposal {pid} (only admins and "
                             "proposal groups may)",
                             "Ask the catalogue team to create it, or set [catalogue] create_proposals = "
                             "false and give an existing proposal.", field="proposal")
    if isinstance(made, ScicatError):  # 409: someone created it meanwhile
        made = http.call("GET", f"/proposals/{quote_id(pid)}", f"reading proposal {pid}")
    log.info("created SciCat proposal %s", pid)
    return facts_of(made if isinstance(made, dict) else body)
