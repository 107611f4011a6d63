"""The storage side of the engine (Transfer) against a real rclone and a real WebDAV server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from servers import WebDAVServer

from trayagent.errors import StorageError
from trayagent.queue import QueuedFile
from trayagent.storage.process import find_rclone
from trayagent.storage.rcerrors import RcError
from trayagent.storage.rclone import RcloneDaemon
from trayagent.storage.target import StorageTarget, parse_remote
from trayagent.storage.transfer import RemoteFile, Transfer


def _requests(server: WebDAVServer, since: int) -> list[str]:
    """'METHOD /path' of each request the server logged after byte offset ``since``."""
    text = server.log_path.read_text()[since:]
    return [f"{m[0]} {m[1]}" for m in re.findall(r'"([A-Z]+) (\S+)"', text)]


def _queued(src: Path, name: str, size: int) -> QueuedFile:
    (src / name).write_bytes(b"a" * size)
    return QueuedFile(1, 1, str(src), name, name, size, None, None, None, "uploading", None, 0, None)


def _transfer(daemon: RcloneDaemon, server: WebDAVServer, tmp_path: Path) -> Transfer:
    remote = parse_remote(f":webdav,url='{server.url}',vendor=other:")
    target = StorageTarget(remote, server.user, server.password, "dav", "127.0.0.1")
    return Transfer(daemon, target, transfers=4, scratch_dir=tmp_path / "scratch", backend_type="webdav")


def test_one_remote_serves_a_dataset_until_storage_fails(webdav_server: WebDAVServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret is obscured once, so rclone builds the dataset folder's remote once: the read-back
    and the manifest after the copy make only their own requests. After a storage error rclone's
    remotes are dropped, and the next call after the outage works at once."""
    src = tmp_path / "src"
    src.mkdir()
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    obscured: list[str] = []
    real_obscure = daemon.obscure

    def counting(clear: str) -> str:
        obscured.append(clear)
        return real_obscure(clear)

    monkeypatch.setattr(daemon, "obscure", counting)
    transfer = _transfer(daemon, webdav_server, tmp_path)
    f = _queued(src, "a.bin", 1000)
    try:
        transfer.check_access("ds")
        assert transfer.hash_types() == []
        assert transfer.copy_batch("ds", [f]) == []
        before = webdav_server.log_path.stat().st_size
        assert transfer.stat("ds", ["a.bin"], None) == {"a.bin": RemoteFile(1000, {})}
        transfer.put_bytes("ds", "m.json", b"{}")
        after = _requests(webdav_server, before)
        assert "PUT /ds/m.json" in after
        assert not [r for r in after if r.rstrip("/") == "PROPFIND /ds"], after  # no remote built again
        assert obscured == [webdav_server.password]
        assert daemon.call("fscache/entries")["entries"] >= 1

        webdav_server.stop()
        with pytest.raises(StorageError) as exc:
            transfer.stat("ds", ["a.bin"], None)
        assert exc.value.transient
        assert daemon.call("fscache/entries")["entries"] == 0
        webdav_server.start()
        assert transfer.stat("ds", ["a.bin"], None) == {"a.bin": RemoteFile(1000, {})}
        assert (webdav_server.root / "ds" / "a.bin").read_bytes() == b"a" * 1000
    finally:
        daemon.stop()


def test_a_failed_copy_drops_rclones_remotes(webdav_server: WebDAVServer, tmp_path: Path) -> None:
    """A copy that fails while storage is down leaves no remote behind for the copy after it."""
    src = tmp_path / "src"
    src.mkdir()
    daemon = RcloneDaemon(find_rclone(), tmp_path / "run")
    transfer = _transfer(daemon, webdav_server, tmp_path)
    try:
        transfer.check_access("ds")
        assert transfer.copy_batch("ds", [_queued(src, "a.bin", 1000)]) == []
        assert daemon.call("fscache/entries")["entries"] >= 1
        webdav_server.stop()
        try:
            errors = transfer.copy_batch("ds", [_queued(src, "b.bin", 2000)])
        except RcError as exc:  # rclone may refuse the job before it starts
            errors = [exc.error]
        assert errors
        assert daemon.call("fscache/entries")["entries"] == 0
        webdav_server.start()
        assert transfer.copy_batch("ds", [_queued(src, "b.bin", 2000)]) == []
        assert (webdav_server.root / "ds" / "b.bin").read_bytes() == b"a" * 2000
    finally:
        daemon.stop()
