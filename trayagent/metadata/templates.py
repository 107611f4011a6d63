"""Beamline templates: the fields a facility wants with every dataset, checked before the upload.

A template is a JSON Schema (draft 2020-12; ``unit`` is read as an annotation on a property) or a
small TOML form that maps to one::

    title = "TOMCAT tomography"
    [fields.sample_name]
    title = "Sample name"
    type = "string"
    required = true
    [fields.energy]
    type = "number"
    unit = "keV"
    default = 20.0
    minimum = 5
    maximum = 60
    [fields.detector]
    type = "string"
    allowed = ["pco.edge", "GigaFRoST"]

``[dataset] template`` names a file, or a name looked up as ``templates/NAME.toml`` or ``.json`` next
to the user's and the site's configuration. Validation uses the ``jsonschema`` library, imported only
when a template is in use.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .model import Entry, entry, parse_number

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TYPES = ("string", "number", "integer", "boolean")
_FORM_KEYS = {"type", "unit", "default", "allowed", "required", "title", "description", "minimum", "maximum"}


@dataclass(frozen=True)
class Template:
    """A loaded template: its name, where it came from, and its JSON Schema."""

    name: str
    source: Path
    schema: dict[str, Any]

    @property
    def required(self) -> list[str]:
        return [str(r) for r in self.schema.get("required", [])]

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        props = self.schema.get("properties") or {}
        return {str(k): v for k, v in props.items() if isinstance(v, dict)}

    def fields(self) -> list[dict[str, Any]]:
        """The form the Dataset dialog renders: one dict per field, in the template's order."""
        required = set(self.required)
        out = []
        for key, prop in self.properties.items():
            kind = prop.get("type") if prop.get("type") in _TYPES else "string"
            out.append({"key": key, "title": prop.get("title") or key, "type": kind,
                        "unit": prop.get("unit") or "", "default": prop.get("default"),
                        "allowed": prop.get("enum"), "required": key in required,
                        "description": prop.get("description") or "",
                        "minimum": prop.get("minimum"), "maximum": prop.get("maximum")})
        return out

    def defaults(self) -> dict[str, Entry]:
        return {k: entry(p["default"], p.get("unit") or "") for k, p in self.properties.items() if "default" in p}

    def coerce(self, values: dict[str, Entry]) -> dict[str, Entry]:
        """Text typed for a number field becomes the number (the dialog sends text), and a number
        given for a text field becomes text: the schema decides the type, not the parser."""
        out = dict(values)
        for key, prop in self.properties.items():
            if key not in out:
                continue
            value, kind = out[key]["value"], prop.get("type")
            if kind in ("number", "integer") and isinstance(value, str):
                number = parse_number(value.strip())
                if number is not None:
                    value = float(number) if kind == "number" else number
            elif kind == "integer" and isinstance(value, float) and value.is_integer():
                value = int(value)
            elif kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            out[key] = {"value": value, "unit": out[key].get("unit") or prop.get("unit") or ""}
        return out

    def problems(self, values: dict[str, Entry]) -> dict[str, str]:
        """Field -> what is wrong with it; empty when ``values`` satisfy the template."""
        from jsonschema import Draft202012Validator

        plain = {k: e["value"] for k, e in values.items() if e.get("value") not in (None, "")}
        found: dict[str, str] = {}
        for error in Draft202012Validator(self.schema).iter_errors(plain):
            if error.validator == "required":
                missing = [r for r in error.validator_value if r not in plain]
                for key in missing:
                    found.setdefault(key, "required: give a value")
                continue
            key = str(error.absolute_path[0]) if error.absolute_path else "(dataset)"
            found.setdefault(key, _say(error.validator, error.validator_value, error.message))
        for key, prop in self.properties.items():
            want, got = prop.get("unit") or "", (values.get(key) or {}).get("unit") or ""
            if key in plain and want and got and got != want and key not in found:
                found[key] = f"unit {got!r} given; the template wants {want!r}"
        return found

    def check(self, values: dict[str, Entry]) -> None:
        """Raise ``ConfigError`` naming every field at fault (the first as ``field`` for a dialog)."""
        found = self.problems(values)
        if not found:
            return
        first = min(found, key=lambda k: (not found[k].startswith("required"), k))
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(found.items()))
        raise ConfigError(f"the metadata does not satisfy the template {self.name!r}: {listed}",
                          "Give every required field a value of the right kind (KEY=VALUE UNIT).",
                          field=f"metadata.{first}")


def _say(validator: Any, expected: Any, message: str) -> str:
    """jsonschema's messages in the dialog's words where they are terse."""
    if validator == "enum":
        return "one of " + ", ".join(str(v) for v in expected)
    if validator == "type":
        return {"number": "a number", "integer": "a whole number", "boolean": "true or false",
                "string": "text"}.get(str(expected), str(expected)) + " expected"
    if validator in ("minimum", "exclusiveMinimum"):
        return f"at least {expected}"
    if validator in ("maximum", "exclusiveMaximum"):
        return f"at most {expected}"
    return message


def form_to_schema(form: dict[str, Any], origin: str) -> dict[str, Any]:
    """The TOML form as a JSON Schema."""
    fields = form.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ConfigError(f"{origin}: no [fields.NAME] tables", "See the README's template example.", field="config")
    props: dict[str, Any] = {}
    required = []
    for key, spec in fields.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{origin}: fields.{key} is not a table", "Write [fields.NAME] with type, unit...",
                              field="config")
        unknown = set(spec) - _FORM_KEYS
        kind = spec.get("type", "string")
        if unknown or kind not in _TYPES:
            what = f"unknown keys {sorted(unknown)}" if unknown else f"type {kind!r} is not one of {_TYPES}"
            raise ConfigError(f"{origin}: fields.{key}: {what}", f"Known keys: {', '.join(sorted(_FORM_KEYS))}.",
                              field="config")
        prop: dict[str, Any] = {"type": kind}
        for src, dst in (("title", "title"), ("description", "description"), ("unit", "unit"),
                         ("default", "default"), ("allowed", "enum"), ("minimum", "minimum"), ("maximum", "maximum")):
            if src in spec:
                prop[dst] = spec[src]
        props[str(key)] = prop
        if spec.get("required"):
            required.append(str(key))
    schema = {"$schema": SCHEMA_DIALECT, "type": "object", "properties": props, "required": required}
    if form.get("title"):
        schema["title"] = form["title"]
    return schema


def load_template(source: Path, name: str | None = None) -> Template:
    """A template file (JSON Schema, or the TOML form); ``ConfigError`` if unreadable or invalid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    origin = f"template {source}"
    try:
        text = source.read_text(encoding="utf-8")
        schema = form_to_schema(tomllib.loads(text), origin) if source.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: cannot be read ({getattr(exc, 'strerror', None) or exc})",
                          "Check [dataset] template.", field="config") from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{origin}: not valid {source.suffix[1:].upper() or 'JSON'} ({exc})",
                          "Fix the template's syntax.", field="config") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"{origin}: not a JSON Schema object", "Fix the template.", field="config")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"{origin}: not a valid JSON Schema ({exc.message})", "Fix the template.",
                          field="config") from exc
    return Template(name or source.stem, source, schema)


def resolve_template(spec: str, folders: Sequence[Path]) -> Template | None:
    """``[dataset] template``: a path, or a name looked up in each folder's ``templates/``."""
    if not spec:
        return None
    given = Path(spec).expanduser()
    if given.suffix.lower() in (".toml", ".json") or len(given.parts) > 1:
        candidates = [given] if given.is_absolute() else [given, *(f / given for f in folders)]
    else:
        candidates = [f / "templates" / f"{spec}{ext}" for f in folders for ext in (".toml", ".json")]
    for path in candidates:
        if path.is_file():
            return load_template(path, spec if given.name == spec else None)
    looked = ", ".join(str(c) for c in candidates) or spec
    raise ConfigError(f"[dataset] template: no template {spec!r} (looked for {looked})",
                      "Put the template there, or set [dataset] template to its full path.", field="config")
