"""Data catalogues: the contract the engine codes against, and the local SQLite implementation.

Other implementations (SciCat) live in their own modules and are imported where they are chosen, so
importing this package never pulls in network dependencies.
"""

from __future__ import annotations

from .base import Catalogue, DatasetSpec, FileRecord, StorageLocation
from .local import LocalCatalogue

__all__ = ["Catalogue", "DatasetSpec", "FileRecord", "LocalCatalogue", "StorageLocation"]
