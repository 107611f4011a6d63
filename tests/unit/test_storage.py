"""Unit tests for trayagent.storage.target: the rclone fs strings the engine sends over rc."""

from __future__ import annotations

from trayagent.storage.target import StorageTarget, parallel_transfers, parse_remote


def _target(spec: str, user: str = "", secret: str | None = None) -> StorageTarget:
    return StorageTarget(parse_remote(spec), user, secret, display="d", host="h")


def _obscure(clear: str) -> str:
    return f"OBSCURED({clear})"


def test_webdav_gets_the_low_pacer_and_credentials() -> None:
    fs = _target(":webdav,url='https://dav.example.org/',vendor=other:base", "bob", "pw").fs("p1/run", _obscure)
    assert fs == (":webdav,url='https://dav.example.org/',vendor=other,pacer_min_sleep=1ms,"
                  "user='bob',pass='OBSCURED(pw)':base/p1/run")


def test_a_pacer_set_in_the_connection_string_is_kept() -> None:
    fs = _target(":webdav,url='https://dav/',pacer_min_sleep=20ms:").fs("x", _obscure)
    assert fs == ":webdav,url='https://dav/',pacer_min_sleep=20ms:x"


def test_a_named_remote_keeps_the_options_its_config_sets() -> None:
    target = _target("facility:data", "bob", "pw")
    assert target.fs("x", _obscure, "webdav", frozenset({"type", "url", "pacer_min_sleep"})) == \
        "facility,user='bob',pass='OBSCURED(pw)':data/x"
    assert target.fs("x", _obscure, "webdav", frozenset({"type", "url"})) == \
        "facility,pacer_min_sleep=1ms,user='bob',pass='OBSCURED(pw)':data/x"


def test_s3_uploads_more_parts_at_once_and_gets_its_keys() -> None:
    fs = _target(":s3,provider=Other,endpoint='http://s3':bucket", "AK", "SK").fs("d", _obscure)
    assert fs == (":s3,provider=Other,endpoint='http://s3',upload_concurrency=8,"
                  "access_key_id='AK',secret_access_key='SK':bucket/d")


def test_copies_of_small_files_to_s3_skip_the_head_after_each_upload() -> None:
    """The engine lists what it sent (size and MD5 of each file), so rclone's HEAD per object is not
    needed for single-part uploads; kept where the remote decides on chunking or on the HEAD itself."""
    plain = _target(":s3,provider=Other,endpoint='http://s3':bucket", "AK", "SK")
    assert plain.fs("d", _obscure, small_files=True) == (
        ":s3,provider=Other,endpoint='http://s3',upload_concurrency=8,no_head=true,"
        "access_key_id='AK',secret_access_key='SK':bucket/d")
    assert "no_head" not in plain.fs("d", _obscure)
    chunked = _target(":s3,provider=Other,upload_cutoff=0:bucket")
    assert "no_head" not in chunked.fs("d", _obscure, small_files=True)
    named = _target("facility:bucket")
    assert "no_head" not in named.fs("d", _obscure, "s3", frozenset({"type", "no_head"}), small_files=True)
    assert "no_head" not in named.fs("d", _obscure, "s3", frozenset({"type", "upload_cutoff"}), small_files=True)
    assert "no_head=true" in named.fs("d", _obscure, "s3", frozenset({"type"}), small_files=True)
    webdav = _target(":webdav,url='https://dav/':")
    assert webdav.fs("x", _obscure, small_files=True) == webdav.fs("x", _obscure)


def test_backends_without_tuning_get_only_credentials() -> None:
    fs = _target(":sftp,host=h:data", "bob", "pw").fs("d", _obscure)
    assert fs == ":sftp,host=h,user='bob',pass='OBSCURED(pw)':data/d"


def test_local_paths_get_no_options(tmp_path: object) -> None:
    assert _target("/srv/store").fs("p/d", _obscure) == "/srv/store/p/d"


def test_auto_transfers_follow_the_backend_and_a_number_wins() -> None:
    assert [parallel_transfers("auto", b) for b in ("s3", "swift", "azureblob", "gcs")] == [8, 8, 8, 8]
    assert [parallel_transfers("auto", b) for b in ("webdav", "sftp", "local", "")] == [4, 4, 4, 4]
    assert parallel_transfers(2, "s3") == 2
    assert parallel_transfers(16, "webdav") == 16
