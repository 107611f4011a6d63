"""When the engine talks to the catalogue, in-process against the real rclone and the local backend.

The catalogue's dataset is created while rclone copies the first batch (a SciCat dataset takes
round trips of its own), after storage access was checked. A catalogue that refuses the dataset for
good is reported once the batch in flight is recorded, so a re-run does not copy it again.
The catalogue is the real local one, wrapped to observe or refuse the call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trayagent.catalogue.base import DatasetSpec, StorageLocation
from trayagent.config import load_config
from trayagent.errors import CatalogueError
from trayagent.paths import resolve_paths
from trayagent.queue import State
from trayagent.uploader import Uploader


@pytest.fixture
def uploader(tmp_path: Path) -> Any:
    """The embedded default, with rclone's bandwidth held at 4 MB/s so that a copy of a few MB
    is still running when the engine turns to the catalogue."""
    home = tmp_path / "home"
    paths = resolve_paths({"TRAYAGENT_HOME": str(home)})
    paths.ensure()
    paths.config_file.write_text('[transfer]\nbwlimit = "4M"\n')
    with Uploader(load_config(paths), paths) as up:
        yield up


def _running_jobs(up: Uploader) -> list[int]:
    daemon = up.engine.transfer.daemon
    ids = daemon.call("job/list").get("jobids") or []
    return [i for i in ids if not daemon.call("job/status", {"jobid": i})["finished"]]


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "frame.raw").write_bytes(b"\x5a" * (3 << 20))  # ~0.75 s at 4 MB/s
    return src


def test_the_dataset_is_catalogued_while_rclone_copies(uploader: Uploader, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = _source(tmp_path)
    seen: list[list[int]] = []
    real = uploader.catalogue.ensure_dataset

    def observed(spec: DatasetSpec, location: StorageLocation) -> str:
        seen.append(_running_jobs(uploader))
        return real(spec, location)
    monkeypatch.setattr(uploader.catalogue, "ensure_dataset", observed)
    outcome = uploader.run(uploader.submit(uploader.plan([str(src)], dataset="overlap")))
    assert (outcome.files_ok, outcome.files_failed) == (1, 0)
    assert len(seen) == 1 and seen[0], f"no copy was running when the dataset was catalogued: {seen}"
    assert outcome.catalogue_id


def test_a_refused_dataset_is_reported_after_the_batch_in_flight_is_recorded(
        uploader: Uploader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _source(tmp_path)
    real = uploader.catalogue.ensure_dataset

    def refuse(spec: DatasetSpec, location: StorageLocation) -> str:
        raise CatalogueError("proposal 123 does not exist", "Check the proposal number.")
    monkeypatch.setattr(uploader.catalogue, "ensure_dataset", refuse)
    dataset = uploader.submit(uploader.plan([str(src)], dataset="refused", proposal="123"))
    with pytest.raises(CatalogueError, match="proposal 123 does not exist"):
        uploader.run(dataset)
    assert _running_jobs(uploader) == []  # the copy ended before the error was raised
    files = uploader.queue.files(dataset.id)
    assert [(f.relpath, f.state) for f in files] == [("frame.raw", State.UPLOADED.value)]
    assert uploader.queue.dataset(dataset.id).catalogue_id is None

    monkeypatch.setattr(uploader.catalogue, "ensure_dataset", real)
    copies = uploader.engine.transfer.daemon.copied_count()
    outcome = uploader.run(dataset)
    assert (outcome.files_ok, outcome.files_failed) == (1, 0)
    assert uploader.engine.transfer.daemon.copied_count() == copies  # verified and registered, not copied again
