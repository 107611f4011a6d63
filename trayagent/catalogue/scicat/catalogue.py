"""The SciCat catalogue: datasets as raw datasets, files as OrigDatablocks (backend v4.x, API v3).

The storage location is the dataset's identity: ``sourceFolder`` is ``/`` + the storage path and
``sourceFolderHost`` the storage host, and ``ensure_dataset`` looks for that folder before creating
anything, so a re-run or restart reuses the dataset. Files go into new OrigDatablocks of at most
20,000 files and 8 MB of JSON; a modified file is patched inside its block. The local block index
(``scicat_blocks``) makes ``register_files`` idempotent without re-reading the dataset's blocks.

Every call may raise ``LoginRequired`` (the hour-long token expired and no password is stored) or a
transient ``CatalogueError``: the engine then pauses registration and calls again later with the same
files, which this class skips or patches as needed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ... import __version__
from ...config import Config, is_email, is_url_host, load_config
from ...errors import CatalogueError, ConfigError, LoginRequired
from ...formats import rfc3339
from ...metadata.model import HARVESTED_KEY
from ...paths import resolve_paths
from ..base import Catalogue, DatasetSpec, FileRecord, StorageLocation
from .auth import Identity, catalogue_url, client_for, parse_identity, parse_whoami
from .blocks import (
    MAX_BLOCK_BYTES,
    MAX_FILES_PER_BLOCK,
    BlockIndex,
    cut_blocks,
    data_file,
    epoch,
    index_from_blocks,
    writable,
)
from .http import ScicatError, ScicatHttp, quote_id
from .proposals import proposal_facts

log = logging.getLogger(__name__)

AGENT_KEY = "trayagent"  # our part of scientificMetadata
_NOT_SCIENTIFIC = (AGENT_KEY, "investigation_description", "proposal_title")


def _plain_json(value: Any) -> Any:
    """User metadata (TOML dates and all) as plain JSON values."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _entries(meta: dict[str, Any]) -> dict[str, Any]:
    """Scientific metadata as compared: SciCat adds ``valueSI`` and ``unitSI`` to the entries it
    understands, which the user never sent."""
    return {k: {f: v[f] for f in ("value", "unit") if f in v} if isinstance(v, dict) and "value" in v else v
            for k, v in meta.items()}


def source_folder(location: StorageLocation) -> str:
    return "/" + location.path.strip("/")


# Dataset properties a user sets, and where: a 400 naming only these is the user's to fix; any other
# refused property is one trayagent fills in itself, so that refusal is a trayagent bug to report.
FIXABLE = {
    "contactEmail": "[catalogue] contact_email", "sourceFolderHost": "[catalogue] source_folder_host",
    "ownerGroup": "[catalogue] owner_group", "accessGroups": "[catalogue] access_groups",
    "creationLocation": "[dataset] creation_location", "datasetName": "the dataset name",
    "description": "the description", "keywords": "the keywords",
    "proposalId": "the proposal id", "scientificMetadata": "the dataset's metadata",
}


def _watch(source: Path | None) -> Callable[[], Config | None]:
    """A reader of ``source`` that returns a fresh Config only when the file changed (and is valid)."""
    seen = [_stamp(source)]

    def reload() -> Config | None:
        stamp = _stamp(source)
        if source is None or stamp == seen[0]:
            return None
        seen[0] = stamp
        try:
            return load_config(resolve_paths(), source)
        except ConfigError as exc:
            log.warning("configuration %s changed but is not valid; keeping the last one: %s", source, exc)
            return None
    return reload


def _stamp(source: Path | None) -> tuple[int, int] | None:
    try:
        st = source.stat() if source else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size) if st else None


def _made_for(dataset: dict[str, Any], storage_url: str) -> bool:
    """False only for a dataset trayagent made for another storage (its mark names the URL)."""
    meta = dataset.get("scientificMetadata")
    mark = meta.get(AGENT_KEY) if isinstance(meta, dict) else None
    url = mark.get("storage_url") if isinstance(mark, dict) else None
    return not url or url == storage_url


class ScicatCatalogue(Catalogue):
    """The ``Catalogue`` contract on a SciCat backend."""

    register_batch = 20_000  # one origdatablock per call, at PSI's per-block cap

    kind = "scicat"

    def __init__(self, connect: Callable[[], ScicatHttp], url: str, index_path: Path, *,
                 owner_group: str = "", access_groups: Sequence[str] = (), create_proposals: bool = False,
                 contact_email: str = "", source_folder_host: str = "",
                 max_files: int = MAX_FILES_PER_BLOCK, max_bytes: int = MAX_BLOCK_BYTES,
                 reload: Callable[[], Config | None] | None = None) -> None:
        self._connect = connect
        self._http: ScicatHttp | None = None
        self._identity: Identity | None = None
        self.url = url.rstrip("/")
        self.index = BlockIndex(index_path, self.url)
        self.owner_group = owner_group
        self.access_groups = list(access_groups)
        self.create_proposals = create_proposals
        self.contact_email = contact_email
        self.source_folder_host = source_folder_host
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._reload = reload

    @classmethod
    def from_config(cls, cfg: Config, index_path: Path) -> ScicatCatalogue:
        """Logging in is deferred to the first call, so uploads start even before ``trayagent login``.
        The dataset settings are read again from the file when it changes, so a long sync session
        whose registration SciCat refused catches up after the user fixes the file, without a restart."""
        c = cfg.catalogue
        return cls(lambda: client_for(cfg)[0], catalogue_url(cfg), index_path, owner_group=c.owner_group,
                   access_groups=c.access_groups, create_proposals=c.create_proposals,
                   contact_email=c.contact_email, source_folder_host=c.source_folder_host,
                   reload=_watch(cfg.source))

    def _refresh(self) -> None:
        """Take up a changed configuration file (a fix the user made while registration waits)."""
        cfg = self._reload() if self._reload else None
        if cfg is not None and catalogue_url(cfg) == self.url:
            c = cfg.catalogue
            self.owner_group, self.access_groups = c.owner_group, list(c.access_groups)
            self.create_proposals, self.contact_email = c.create_proposals, c.contact_email
            self.source_folder_host = c.source_folder_host
            log.info("SciCat dataset settings read again from %s", cfg.source)

    @property
    def http(self) -> ScicatHttp:
        if self._http is None:
            self._http = self._connect()
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self.index.close()

    def identity(self) -> Identity:
        if self._identity is None:
            ident = self.http.call("GET", "/users/my/identity", "reading your identity", accept=(403, 404))
            found = None if isinstance(ident, ScicatError) else parse_identity(ident)
            who = None if found else self.http.call("GET", "/auth/whoami", "reading who you are")
            self._identity = found or parse_whoami(who)
        return self._identity

    # -- datasets -------------------------------------------------------------------------------
    def host_of(self, location: StorageLocation) -> str:
        """``sourceFolderHost``: the site's setting, else the storage endpoint's host where SciCat
        accepts it (an IP address or dotted name), else "" (the field is left out)."""
        host = self.source_folder_host or location.host
        return host.lower() if is_url_host(host) else ""

    def contact(self, ident: Identity) -> str:
        """``contactEmail``: the account's address, else ``[catalogue] contact_email``; SciCat refuses
        anything that is not an address, so without one the dataset cannot be created."""
        for email in (ident.email, self.contact_email):
            if email and is_email(email):
                return email
        raise CatalogueError(
            f"SciCat needs a contact email for new datasets, and your account ({ident.username}) has none",
            "Set [catalogue] contact_email (e.g. the beamline's address) in the configuration file. Uploads "
            "go on; registration catches up by itself once it is set.")

    def preflight(self) -> None:
        """Refuse before uploading what could not be catalogued. Not logged in, or SciCat down: the
        upload goes on and registration waits, as it would anyway."""
        try:
            ident = self.identity()
        except LoginRequired:
            return
        except CatalogueError as exc:
            if exc.transient:
                return
            raise
        self.contact(ident)

    def ensure_dataset(self, spec: DatasetSpec, location: StorageLocation) -> str:
        self._refresh()
        folder = source_folder(location)
        existing = self._find(folder, self.host_of(location), location.url)
        if existing:
            log.info("reusing SciCat dataset %s (sourceFolder %s)", existing["pid"], folder)
            self._bring_up_to_date(existing, spec)
            return str(existing["pid"])
        ident = self.identity()
        self.contact(ident)
        facts = proposal_facts(self.http, spec, ident, self.owner_group, self.create_proposals,
                               self.contact_email) if spec.proposal else {}
        group = self.owner_group or facts.get("ownerGroup") or (ident.groups[0] if ident.groups else "")
        if not group:
            raise CatalogueError("no ownerGroup for the new SciCat dataset: your account lists no groups",
                                 "Set [catalogue] owner_group to the group that should own your data.")
        body = self._dataset_body(spec, location, ident, group, facts)
        what = f"creating the dataset {spec.name!r} with ownerGroup {group!r}"
        created = self.http.call("POST", "/datasets", what, body=body, accept=(403,), fixable=FIXABLE)
        if isinstance(created, ScicatError):
            raise CatalogueError(
                f"SciCat refused to create {spec.name!r} owned by group {group!r}: you are not a member "
                f"(your groups: {', '.join(ident.groups) or 'none'}). {created.server_message}".strip(),
                "Set [catalogue] owner_group to one of your groups, or ask the catalogue team to add you.")
        pid = created.get("pid") if isinstance(created, dict) else None
        if not isinstance(pid, str) or not pid:
            raise ScicatError("SciCat created the dataset but its answer holds no pid",
                              "Retried automatically; the dataset is found by its folder next time.",
                              transient=True)
        log.info("created SciCat dataset %s for %s", pid, folder)
        return pid

    def _find(self, folder: str, host: str, storage_url: str) -> dict[str, Any] | None:
        """The dataset already registered for this storage folder: same sourceFolder, the same host
        as we would send (none when we send none), and, for datasets trayagent made, the same
        storage URL (two storages without a known host may share a folder name). Its pid and the
        fields ``_bring_up_to_date`` compares."""
        query = {"where": {"sourceFolder": folder},
                 "fields": {"pid": 1, "sourceFolderHost": 1, "scientificMetadata": 1, "description": 1,
                            "keywords": 1}}
        found = self.http.call("GET", "/datasets", f"looking up datasets in {folder}",
                               params={"filter": json.dumps(query)})
        if not isinstance(found, list):
            raise ScicatError("SciCat's dataset search did not answer a list", "Check [catalogue] url.")
        mine = [d for d in found if isinstance(d, dict) and isinstance(d.get("pid"), str)
                and str(d.get("sourceFolderHost") or "").lower() == host
                and _made_for(d, storage_url)]
        if len(mine) > 1:
            log.warning("%d SciCat datasets share sourceFolder %s; using %s", len(mine), folder, mine[0]["pid"])
        return mine[0] if mine else None

    def update_dataset(self, dataset_id: str, spec: DatasetSpec) -> None:
        self._bring_up_to_date(self._dataset(dataset_id), spec)

    def _bring_up_to_date(self, dataset: dict[str, Any], spec: DatasetSpec) -> None:
        """PATCH only the fields trayagent owns (``description``, ``keywords``, ``scientificMetadata``),
        and only when the user's latest values differ: the user's entries replace the old ones as a
        whole; the harvested summary, trayagent's mark and the proposal title stay."""
        pid = str(dataset["pid"])
        body: dict[str, Any] = {}
        if spec.description and spec.description != dataset.get("description"):
            body["description"] = spec.description
        if spec.keywords and list(spec.keywords) != dataset.get("keywords"):
            body["keywords"] = list(spec.keywords)
        old: dict[str, Any] = dataset.get("scientificMetadata") or {}
        meta = dict(old)
        if spec.metadata:
            meta = {k: v for k, v in old.items() if k in _NOT_SCIENTIFIC or k == HARVESTED_KEY}
            meta.update(_plain_json(spec.metadata))
        if spec.investigation_description:
            meta["investigation_description"] = spec.investigation_description
        if _entries(meta) != _entries(old):
            body["scientificMetadata"] = meta
        if not body:
            return
        self.http.call("PATCH", f"/datasets/{quote_id(pid)}", f"updating the {', '.join(body)} of dataset {pid}",
                       body=body, fixable=FIXABLE)
        log.info("SciCat dataset %s takes the new %s", pid, ", ".join(body))

    def _dataset_body(self, spec: DatasetSpec, location: StorageLocation, ident: Identity, group: str,
                      facts: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = _plain_json(spec.metadata)
        if spec.investigation_description:
            meta["investigation_description"] = spec.investigation_description
        if facts.get("title"):
            meta["proposal_title"] = facts["title"]
        meta[AGENT_KEY] = {"agent": f"trayagent {__version__}", "storage_url": location.url,
                           "local_folders": list(spec.source_folders), "complete": False}
        body: dict[str, Any] = {
            "type": "raw", "datasetName": spec.name, "ownerGroup": group,
            "owner": ident.display_name or spec.owner or ident.username,
            "contactEmail": self.contact(ident), "sourceFolder": source_folder(location),
            "creationTime": rfc3339(), "creationLocation": spec.creation_location or "/unknown",
            "principalInvestigator": facts.get("pi") or ident.display_name or ident.username,
            "keywords": list(spec.keywords), "scientificMetadata": meta, "size": 0, "numberOfFiles": 0,
        }
        if self.host_of(location):
            body["sourceFolderHost"] = self.host_of(location)
        if is_email(ident.email):
            body["ownerEmail"] = ident.email
        if self.access_groups:
            body["accessGroups"] = self.access_groups
        if spec.description or facts.get("title"):
            body["description"] = spec.description or facts["title"]
        if spec.proposal:
            body["proposalId"] = spec.proposal
        return body

    def _dataset(self, pid: str) -> dict[str, Any]:
        got = self.http.call("GET", f"/datasets/{quote_id(pid)}", f"reading dataset {pid}")
        if not isinstance(got, dict):
            raise ScicatError(f"SciCat's answer for dataset {pid} is not an object", "Check [catalogue] url.")
        return got

    def lookup_proposal(self, proposal_id: str) -> dict[str, str]:
        """PI, ownerGroup, title and email of a proposal, to prefill the Dataset dialog."""
        return proposal_facts(self.http, DatasetSpec(name="", proposal=proposal_id), self.identity(), "",
                              False, self.contact_email)

    def finish_dataset(self, dataset_id: str) -> None:
        meta = self._dataset(dataset_id).get("scientificMetadata") or {}
        mark = dict(meta.get(AGENT_KEY) or {}, complete=True, finished=rfc3339())
        self.http.call("PATCH", f"/datasets/{quote_id(dataset_id)}", f"marking dataset {dataset_id} complete",
                       body={"scientificMetadata": {**meta, AGENT_KEY: mark}}, fixable={})

    def dataset_info(self, dataset_id: str) -> dict[str, Any]:
        d = self._dataset(dataset_id)
        meta = d.get("scientificMetadata") or {}
        mark = meta.get(AGENT_KEY) or {}
        return {"id": dataset_id, "name": d.get("datasetName", ""), "description": d.get("description"),
                "proposal": d.get("proposalId"), "keywords": d.get("keywords") or [],
                "investigation_description": meta.get("investigation_description"),
                "created": d.get("creationTime"), "finished": mark.get("finished"),
                "size": d.get("size", 0), "number_of_files": d.get("numberOfFiles", 0),
                "owner_group": d.get("ownerGroup"), "source_folder": d.get("sourceFolder"),
                "storage_url": mark.get("storage_url"), "catalogue": self.url,
                "metadata": {k: v for k, v in meta.items() if k not in _NOT_SCIENTIFIC}}

    def harvested(self, dataset_id: str) -> dict[str, Any]:
        found = (self._dataset(dataset_id).get("scientificMetadata") or {}).get(HARVESTED_KEY)
        return found if isinstance(found, dict) else {}

    def set_harvested(self, dataset_id: str, summary: dict[str, Any]) -> None:
        """``scientificMetadata.harvested``: beside the user's entries (top level), which win."""
        meta = self._dataset(dataset_id).get("scientificMetadata") or {}
        self.http.call("PATCH", f"/datasets/{quote_id(dataset_id)}", f"storing the harvested metadata of {dataset_id}",
                       body={"scientificMetadata": {**meta, HARVESTED_KEY: _plain_json(summary)}})

    # -- files ----------------------------------------------------------------------------------
    def _blocks(self, pid: str) -> list[dict[str, Any]]:
        path = f"/datasets/{quote_id(pid)}/origdatablocks"
        got = self.http.call("GET", path, f"reading the files of {pid}")
        if not isinstance(got, list):
            raise ScicatError(f"SciCat's file list of {pid} is not a list", "Check [catalogue] url.")
        return [b for b in got if isinstance(b, dict)]

    def list_files(self, dataset_id: str) -> list[FileRecord]:
        files: dict[str, FileRecord] = {}
        for block in self._blocks(dataset_id):
            alg = str(block.get("chkAlg") or "")
            for f in block.get("dataFileList") or []:
                files[f["path"]] = FileRecord(f["path"], int(f.get("size") or 0), epoch(f.get("time", "")),
                                              str(f.get("chk") or ""), alg, "size")
        return sorted(files.values(), key=lambda r: r.path)

    def register_files(self, dataset_id: str, files: Sequence[FileRecord]) -> None:
        latest = {f.path: f for f in files}
        if not latest:
            return
        if not self.index.synced(dataset_id):
            self.index.replace_all(dataset_id, index_from_blocks(self._blocks(dataset_id)))
        known = self.index.lookup(dataset_id, list(latest))
        new = [f for p, f in latest.items() if p not in known]
        changed: dict[str, list[FileRecord]] = defaultdict(list)
        for p, entry in known.items():
            f = latest[p]
            if (entry.chk, entry.size) != (f.checksum, f.size):
                changed[entry.block].append(f)
        for block, updates in changed.items():
            new += self._patch_block(dataset_id, block, updates)
        by_alg: dict[str, list[FileRecord]] = defaultdict(list)
        for f in new:
            by_alg[f.algorithm].append(f)
        for alg, group in by_alg.items():
            for entries in cut_blocks([data_file(f) for f in group], self.max_files, self.max_bytes):
                self._create_block(dataset_id, alg, entries)
        log.info("SciCat %s: %d files registered, %d updated, %d already there", dataset_id, len(new),
                 sum(map(len, changed.values())), len(latest) - len(new) - sum(map(len, changed.values())))

    def _create_block(self, pid: str, alg: str, entries: list[dict[str, Any]]) -> None:
        body = {"datasetId": pid, "size": sum(e["size"] for e in entries), "dataFileList": entries}
        if alg:
            body["chkAlg"] = alg
        self.index.mark_unsynced(pid)
        made = self.http.call("POST", "/origdatablocks", f"registering {len(entries)} files of {pid}",
                              body=body, accept=(413,), fixable={})
        if isinstance(made, ScicatError):  # a smaller body limit than the backend's default
            if len(entries) < 2:
                raise made
            half = len(entries) // 2
            log.info("SciCat refused a block of %d files as too large; sending halves", len(entries))
            self._create_block(pid, alg, entries[:half])
            self._create_block(pid, alg, entries[half:])
            return
        block = made.get("_id") or made.get("id") if isinstance(made, dict) else None
        if not block:
            raise ScicatError("SciCat's answer to a new file block holds no id",
                              "Retried automatically; nothing is registered twice.", transient=True)
        self.index.record(pid, str(block), entries)

    def _patch_block(self, pid: str, block: str, updates: list[FileRecord]) -> list[FileRecord]:
        """Replace modified files' entries in ``block``; returns files that must move to a new block
        (their checksum algorithm differs from the block's)."""
        what = f"updating modified files of {pid}"
        current = self.http.call("GET", f"/origdatablocks/{quote_id(block)}", what)
        if not isinstance(current, dict):
            raise ScicatError(f"SciCat's answer for file block {block} is not an object",
                              "Check [catalogue] url.")
        alg = str(current.get("chkAlg") or "")
        listed = [e for e in current.get("dataFileList") or [] if isinstance(e, dict) and "path" in e]
        present = {e["path"] for e in listed}
        movers = [f for f in updates if f.algorithm != alg or f.path not in present]
        stay = {f.path: data_file(f) for f in updates if f not in movers}
        moving = {f.path for f in movers}
        # what GET returned carries the server's own fields (_id, id): send back only a DataFile's
        entries = [stay.get(e["path"]) or writable(e) for e in listed if e["path"] not in moving]
        if not entries:  # every file of the block moves: the block takes the new algorithm instead
            alg = movers[0].algorithm
            entries = [data_file(f) for f in movers if f.algorithm == alg and f.path in present]
            movers = [f for f in movers if f.algorithm != alg or f.path not in present]
            if not entries:
                return movers
        body = {"size": sum(int(e["size"]) for e in entries), "dataFileList": entries, "chkAlg": alg}
        self.http.call("PATCH", f"/origdatablocks/{quote_id(block)}", what, body=body, fixable={})
        self.index.record(pid, block, entries)
        return movers
