"""The dataset's ``ro-crate-metadata.json``: a self-describing file list that travels with the data.

A catalogue can be unreachable, replaced or migrated; a standard RO-Crate 1.1 document next to the
files keeps their sizes, dates and checksums readable by any RO-Crate tool without trayagent.

Representation choices (RO-Crate 1.1, https://w3id.org/ro/crate/1.1):

* ``@context`` is ``["https://w3id.org/ro/crate/1.1/context", {"sha256": "http://schema.org/sha256"}]``:
  the 1.1 context predates schema.org's ``sha256`` property, so it is declared the way RO-Crate 1.1
  allows extending the context (and as RO-Crate 1.2 later adopted it).
* Checksums: ``sha256`` digests use the ``sha256`` property. Every other algorithm (md5, blake2b, ...)
  is a ``PropertyValue`` contextual entity (``propertyID`` = algorithm name as rclone spells it,
  ``value`` = hex digest) referenced from the file's ``identifier``, which schema.org defines as
  Text, URL or PropertyValue. Files with equal digests share one entity.
* File ``@id``: the relative path, with every character that is not allowed in an IRI path percent-
  encoded as UTF-8 (space, ``#``, ``%``, ``?``, ``:``, ``[``, ``]``, controls such as newline, ...).
  Unicode letters stay as they are (RO-Crate prefers IRIs); ``urllib.parse.unquote`` gives the path back.
  ``:`` is encoded so that a first segment like ``c:x`` cannot be read as a URI scheme.
* ``contentSize`` is a string of bytes, as in the RO-Crate examples (schema.org types it as Text).
* The proposal is a ``Project`` entity referenced from the root's ``funder``, RO-Crate 1.1's
  recommended way to associate a research project; the investigation description is its description.
* The uploader is a ``SoftwareApplication``, the ``instrument`` of a ``CreateAction`` whose ``result``
  is the root dataset (RO-Crate 1.1 provenance).
* A file named ``ro-crate-metadata.json`` at the top of the dataset is the document itself and is not
  listed again; duplicate paths are listed once (the last record wins).

Everything is built in one pass with dictionaries, so 100,000 files cost linear time.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..catalogue.base import FileRecord
from ..formats import rfc3339

RO_CRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_PROFILE = "https://w3id.org/ro/crate/1.1"
METADATA_FILE = "ro-crate-metadata.json"
SHA256_TERM = "http://schema.org/sha256"
SOFTWARE_ID = "#generator"


class Writer(Protocol):
    """Where a streamed manifest goes: a text file, ``io.StringIO`` or the engine's spool."""

    def write(self, text: str, /) -> int: ...
ACTION_ID = "#upload"

# RFC 3987 ipchar without ":" (see module docstring): unreserved, sub-delims, "@", "/" and ucschar.
_UCSCHAR = "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef" + "".join(
    f"{chr(plane << 16)}-{chr((plane << 16) | 0xFFFD)}" for plane in range(1, 14)
) + "\U000e1000-\U000efffd"
_IRI_PATH_ASCII = "A-Za-z0-9\\-._~!$&'()*+,;=@/"
_NOT_IN_IRI_PATH_ASCII = re.compile(f"[^{_IRI_PATH_ASCII}]")


@functools.cache
def _not_in_iri_path() -> re.Pattern[str]:
    """Compiled on the first non-ASCII name only: its Unicode ranges take ~5 ms to compile."""
    return re.compile(f"[^{_IRI_PATH_ASCII}{_UCSCHAR}]")


def encode_path(path: str) -> str:
    """A relative file path as an RO-Crate ``@id`` (IRI path); ``urllib.parse.unquote`` reverses it."""
    return (_NOT_IN_IRI_PATH_ASCII if path.isascii() else _not_in_iri_path()).sub(_percent_encode, path)


def _percent_encode(match: re.Match[str]) -> str:
    char = match.group()
    try:
        raw = char.encode("utf-8", "surrogateescape")  # undecodable file-name bytes (os.fsdecode)
    except UnicodeEncodeError:
        raw = char.encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in raw)


def _text(value: str) -> str:
    """``value`` made writable as UTF-8 (lone surrogates from undecodable names become U+FFFD)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _timestamp(seconds: float) -> str | None:
    try:
        return rfc3339(seconds, timespec="auto")
    except (OverflowError, OSError, ValueError):
        return None


def load_media_types() -> None:
    """Read the system's media-type tables (``/etc/mime.types`` and the like, or the Windows
    registry; ~3 ms) ahead of the first manifest, at a moment when the caller is waiting anyway."""
    if not mimetypes.inited:
        mimetypes.init()


def _suffixes(path: str) -> str:
    """Everything from the first dot of the file's name on: all ``guess_type`` looks at."""
    name = path.rpartition("/")[2].lstrip(".")  # a leading dot starts the name (".json": no ending)
    dot = name.find(".")
    return "" if dot < 0 else name[dot:]


@functools.lru_cache(maxsize=1024)
def _media_type(suffixes: str) -> str | None:
    """Per distinct ending, not per file: a detector's run has a handful of endings."""
    return mimetypes.guess_type("file" + suffixes, strict=False)[0] if suffixes else None


def _file_entity(record: FileRecord, checksums: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "@id": encode_path(record.path),
        "@type": "File",
        "name": _text(record.path.rpartition("/")[2]),
        "contentSize": str(record.size),
    }
    modified = _timestamp(record.mtime)
    if modified:
        entity["dateModified"] = modified
    media_type = _media_type(_suffixes(record.path))
    if media_type:
        entity["encodingFormat"] = media_type
    if record.checksum:
        _add_checksum(entity, record, checksums)
    return entity


def _add_checksum(entity: dict[str, Any], record: FileRecord, checksums: dict[str, dict[str, Any]] | None) -> None:
    """sha256 inline; other algorithms by reference to their PropertyValue (collected in ``checksums``,
    or, when streaming, written apart from the distinct checksums the queue lists)."""
    algorithm = record.algorithm.lower()
    if algorithm == "sha256":
        entity["sha256"] = record.checksum
        return
    checksum_id = _checksum_id(algorithm, record.checksum)
    if checksums is not None and checksum_id not in checksums:
        checksums[checksum_id] = _checksum_entity(algorithm, record.checksum)
    entity["identifier"] = {"@id": checksum_id}


def _checksum_id(algorithm: str, checksum: str) -> str:
    return f"#{encode_path(algorithm)}-{encode_path(checksum)}"


def _checksum_entity(algorithm: str, checksum: str) -> dict[str, Any]:
    return {
        "@id": _checksum_id(algorithm, checksum),
        "@type": "PropertyValue",
        "name": f"{algorithm} checksum",
        "propertyID": algorithm,
        "value": checksum,
    }


def _project(dataset: dict[str, Any]) -> dict[str, Any] | None:
    proposal = dataset.get("proposal")
    if not proposal:
        return None
    project: dict[str, Any] = {
        "@id": f"#proposal-{encode_path(str(proposal))}",
        "@type": "Project",
        "name": f"Proposal {proposal}",
        "identifier": str(proposal),
    }
    if dataset.get("investigation_description"):
        project["description"] = dataset["investigation_description"]
    return project


_USER, _HARVESTED = "entered by the user", "harvested from the data files"


def property_values(dataset: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The dataset's scientific metadata as schema.org ``PropertyValue`` entities (``unitText`` for
    units; a harvested range as ``minValue``/``maxValue``); ``description`` tells a curator whether
    the user entered it or it was read from the files. The root lists them as ``variableMeasured``."""
    meta = dataset.get("metadata") or {}
    found = meta.get("harvested")
    harvested: dict[str, Any] = found if isinstance(found, dict) else {}
    for origin, prefix, entries in ((_USER, "#meta-", {k: v for k, v in meta.items() if k != "harvested"}),
                                    (_HARVESTED, "#harvested-", harvested)):
        for key, item in entries.items():
            if not isinstance(item, dict) or "value" not in item:
                continue
            value = item["value"]
            prop: dict[str, Any] = {"@id": prefix + encode_path(str(key)), "@type": "PropertyValue",
                                    "name": _text(str(key)), "propertyID": _text(str(key)), "description": origin}
            if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
                prop["minValue"], prop["maxValue"] = value
            else:
                prop["value"] = value
            if item.get("unit"):
                prop["unitText"] = item["unit"]
            yield prop


def _root(dataset: dict[str, Any], parts: list[str], project: dict[str, Any] | None) -> dict[str, Any]:
    name = str(dataset.get("name") or dataset.get("id") or "dataset")
    created = dataset.get("created")
    root: dict[str, Any] = {
        "@id": "./",
        "@type": "Dataset",
        "name": name,
        "description": dataset.get("description") or f"Data files of {name}",
        "datePublished": dataset.get("finished") or created or rfc3339(timespec="seconds"),
    }
    if created:
        root["dateCreated"] = created
    if dataset.get("id"):
        root["identifier"] = str(dataset["id"])
    if dataset.get("keywords"):
        root["keywords"] = ", ".join(str(k) for k in dataset["keywords"])
    if project:
        root["funder"] = {"@id": project["@id"]}
    measured = [{"@id": p["@id"]} for p in property_values(dataset)]
    if measured:
        root["variableMeasured"] = measured
    root["hasPart"] = [{"@id": part} for part in parts]
    return root


def _provenance(dataset: dict[str, Any], generator: str) -> list[dict[str, Any]]:
    action: dict[str, Any] = {
        "@id": ACTION_ID,
        "@type": "CreateAction",
        "name": f"Upload and registration by {generator}",
        "instrument": {"@id": SOFTWARE_ID},
        "result": {"@id": "./"},
    }
    if dataset.get("created"):
        action["startTime"] = dataset["created"]
    if dataset.get("finished"):
        action["endTime"] = dataset["finished"]
    software = {"@id": SOFTWARE_ID, "@type": "SoftwareApplication", "name": generator}
    return [action, software]


def build_ro_crate(dataset: dict[str, Any], files: Iterable[FileRecord], generator: str) -> dict[str, Any]:
    """The RO-Crate 1.1 metadata document for ``dataset`` and its ``files``.

    ``dataset`` uses the keys of ``LocalCatalogue.dataset_info``: ``name``, and optionally ``id``,
    ``description``, ``proposal``, ``investigation_description``, ``keywords`` (list), ``created`` and
    ``finished`` (RFC 3339). ``datePublished`` is ``finished``, else ``created``, else now.
    ``generator`` names the uploading software, e.g. ``"trayagent 0.1.0"``.
    """
    checksums: dict[str, dict[str, Any]] = {}
    entities: dict[str, dict[str, Any]] = {}
    for record in files:
        if record.path == METADATA_FILE:
            continue
        entity = _file_entity(record, checksums)
        entities[entity["@id"]] = entity
    project = _project(dataset)
    graph: list[dict[str, Any]] = [_DESCRIPTOR, _root(dataset, list(entities), project)]
    graph.extend(entities.values())
    graph.extend(property_values(dataset))
    graph.extend(checksums.values())
    if project:
        graph.append(project)
    graph.extend(_provenance(dataset, generator))
    return {"@context": _CONTEXT, "@graph": graph}


_CONTEXT = [RO_CRATE_CONTEXT, {"sha256": SHA256_TERM}]
_DESCRIPTOR = {
    "@id": METADATA_FILE,
    "@type": "CreativeWork",
    "conformsTo": {"@id": RO_CRATE_PROFILE},
    "about": {"@id": "./"},
}


# one encoder for the lot: json.dumps with an option builds a new one per call (per file entity)
_to_json = json.JSONEncoder(ensure_ascii=False).encode


def stream_ro_crate(dataset: dict[str, Any], files: Callable[[], Iterable[FileRecord]],
                    checksums: Iterable[tuple[str, str]], out: Writer, generator: str) -> None:
    """The document of ``build_ro_crate``, written to ``out`` one entity per line as the records come:
    memory stays flat for a million files. ``files`` is called twice (the root's ``hasPart``, then
    the file entities) and must list each path once, as the queue does; ``checksums`` lists each
    distinct (algorithm, checksum) once (the queue's ``iter_checksums``)."""
    project = _project(dataset)
    root = _to_json(_root(dataset, [], project))
    out.write(f'{{"@context": {json.dumps(_CONTEXT)},\n"@graph": [\n{json.dumps(_DESCRIPTOR)},\n')
    out.write(root[: root.rindex('"hasPart": []')] + '"hasPart": [')
    first = True
    for record in files():
        if record.path != METADATA_FILE:
            part = _to_json(encode_path(record.path))
            out.write(("" if first else ",") + f'\n{{"@id": {part}}}')
            first = False
    out.write("]}")
    for record in files():
        if record.path != METADATA_FILE:
            out.write(",\n" + _to_json(_file_entity(record, None)))
    for algorithm, checksum in checksums:
        if algorithm.lower() != "sha256":
            out.write(",\n" + _to_json(_checksum_entity(algorithm.lower(), checksum)))
    for entity in [*property_values(dataset), *([project] if project else []), *_provenance(dataset, generator)]:
        out.write(",\n" + _to_json(entity))
    out.write("\n]}\n")


def write_ro_crate(doc: dict[str, Any], path: Path) -> Path:
    """Write ``doc`` atomically to ``path`` (a file, or a folder to hold ``ro-crate-metadata.json``)."""
    target = Path(path)
    if target.is_dir():
        target = target / METADATA_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            json.dump(doc, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the manifest is meant to be read by others
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
