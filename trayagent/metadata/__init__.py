"""Scientific metadata: what the user says about a dataset, what a beamline template asks for, and
what extractors read from the data files.

Three parts, usable apart: ``model`` (entries in the community's ``{"value": ..., "unit": ...}``
form, parsed from the command line or a file), ``templates`` (a facility's JSON Schema or small TOML
form, validated with ``jsonschema``), and ``harvest`` (extractors run beside the upload under a time
and size budget, their results aggregated per dataset by ``aggregate``). Nothing here imports the
catalogue or the pipeline: they import this.
"""

from __future__ import annotations

from .model import HARVESTED_KEY, RESERVED_KEYS, Entry, entry, parse_assignment, read_metadata_file

__all__ = ["HARVESTED_KEY", "RESERVED_KEYS", "Entry", "entry", "parse_assignment", "read_metadata_file"]
