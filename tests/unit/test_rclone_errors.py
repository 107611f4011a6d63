"""Unit tests for trayagent.storage.rclone's error classification and secret redaction (no rclone process)."""

from __future__ import annotations

import pytest

from trayagent.errors import StorageError
from trayagent.storage.rcerrors import RcError, is_auth_error, is_no_space, is_transient, plain_error
from trayagent.storage.redact import Redactor

# (rclone error text, transient?, auth?)
CASES = [
    ("couldn't connect: dial tcp 127.0.0.1:8080: connect: connection refused", True, False),
    ('Put "http://127.0.0.1:8080/dav/a.h5": dial tcp: lookup store.example: no such host', True, False),
    ("read tcp 10.0.0.2:51234->10.0.0.9:443: read: connection reset by peer", True, False),
    ("context deadline exceeded", True, False),
    ("net/http: TLS handshake timeout", True, False),
    ("i/o timeout", True, False),
    ("unexpected EOF", True, False),
    ("write: broken pipe", True, False),
    ("500 Internal Server Error", True, False),
    ("502 Bad Gateway", True, False),
    ("503 Service Unavailable", True, False),
    ("SlowDown: Please reduce your request rate.\n\tstatus code: 503, request id: 17A2B3C4", True, False),
    ("429 Too Many Requests", True, False),
    ("source file is being updated (size changed from 10 to 20)", True, False),
    ("rclone is not answering", True, False),
    ("401 Unauthorized", False, True),
    ("couldn't list files: 401 Unauthorized: ", False, True),
    ("read metadata failed: 401 Not Authorized", False, True),  # WebDAV, building the remote
    ("read metadata failed: 404 Not Found", False, False),
    ("403 Forbidden", False, True),
    (("SignatureDoesNotMatch: The request signature we calculated does not match the signature you "
      "provided. Check your key and signing method.\n\tstatus code: 403, request id: 1769A2F7B1E2C3D4, "
      "host id: "), False, True),
    (("InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.\n\tstatus "
      "code: 403, request id: 1769A2F7B1E2C3D5, host id: "), False, True),
    ("AccessDenied: Access Denied\n\tstatus code: 403", False, True),
    ("failed to open source object: open /data/run1/a.h5: permission denied", False, False),
    ("NoSuchBucket: The specified bucket does not exist\n\tstatus code: 404", False, False),
    ("directory not found", False, False),
    ("413 Request Entity Too Large", False, False),
    ("400 Bad Request", False, False),
    ("409 Conflict", False, False),
    ("InvalidBucketName: The specified bucket is not valid.\n\tstatus code: 400, request id: 17A2B3C4D5E6",
     False, False),
    ("object name invalid", False, False),
]


@pytest.mark.parametrize(("error", "transient", "auth"), CASES, ids=[c[0][:40] for c in CASES])
def test_classification(error: str, transient: bool, auth: bool) -> None:
    assert is_transient(error) is transient
    assert is_auth_error(error) is auth


def test_auth_words_are_case_insensitive_and_whole_words() -> None:
    assert is_auth_error("UNAUTHORIZED") and is_auth_error("unauthorised")
    assert not is_auth_error("port 4010 closed")
    assert not is_auth_error("forbiddenfruit.h5 copied")


def test_unknown_errors_are_retried() -> None:
    assert is_transient("something odd happened") is True
    assert is_transient("") is True


def test_transient_wins_over_permanent_words() -> None:
    assert is_transient("500 Internal Server Error: invalid response from backend") is True


def test_auth_wins_over_transient_words() -> None:
    """A refused credential never heals by waiting: retrying it only locks the account."""
    assert is_transient("403 Forbidden after connection reset") is False


def test_rc_error_carries_classification() -> None:
    err = RcError("operations/copyfile", 500, "401 Unauthorized")
    assert isinstance(err, StorageError)
    assert (err.transient, err.status, err.error) == (False, 500, "401 Unauthorized")
    assert err.message == "rclone operations/copyfile: 401 Unauthorized"
    assert RcError("sync/copy", 500, "connection refused").transient is True


@pytest.mark.parametrize(("error", "transient", "auth"), [
    ("failed to open source object: open /data/frames/500.tif: permission denied", False, False),
    ("failed to open source object: open /data/run-401/img.tif: permission denied", False, False),
])
def test_numbers_in_paths_are_not_status_codes(error: str, transient: bool, auth: bool) -> None:
    assert (is_transient(error), is_auth_error(error)) == (transient, auth)


# -- Redactor ------------------------------------------------------------------------------------


def test_redactor_masks_every_occurrence() -> None:
    r = Redactor()
    r.add("s3cr3t-pass")
    assert r("user=alice pass=s3cr3t-pass again s3cr3t-pass") == "user=alice pass=*** again ***"


def test_redactor_masks_longest_first() -> None:
    r = Redactor()
    r.add("abcd")
    r.add("abcdefgh")
    assert r("key abcdefgh and abcd") == "key *** and ***"
    assert "efgh" not in r("abcdefgh")


def test_redactor_ignores_empty_and_short_secrets() -> None:
    r = Redactor()
    r.add("")
    r.add("abc")
    assert r("abc is fine") == "abc is fine"


def test_redactor_without_secrets_is_identity() -> None:
    assert Redactor()("nothing to hide: 401 Unauthorized") == "nothing to hide: 401 Unauthorized"


# A full storage or an exceeded quota: its own kind (not transient, not auth, not a file's fault)
NO_SPACE = [
    "507 Insufficient Storage",
    "Put \"http://h/dav/a.h5\": unchunked simple update failed: 507 Insufficient Storage",
    "413 Request Entity Too Large",
    ("unchunked simple update failed: <!DOCTYPE HTML PUBLIC '-//W3C//DTD HTML 4.01//EN'>\n<html><head>\n"
     "<title>500 Internal Server Error</title></head><body><h1>500 Internal Server Error</h1>\n<p>500 Internal "
     "Server Error: An internal server error occurred\n    Source exception: OSError(28, &#x27;No space left "
     "on device&#x27;)</p></body></html>: 500 Internal Server Error"),
    "QuotaExceeded: \n\tstatus code: 403, request id: 1769A2F7B1E2C3D6, host id: ",
    "EntityTooLarge: Your proposed upload exceeds the maximum allowed object size.\n\tstatus code: 400",
    "XMinioStorageFull: Storage backend has reached its minimum free drive threshold.\n\tstatus code: 507",
    "write /mnt/store/a.h5: no space left on device",
    "write /mnt/store/a.h5: disk quota exceeded",
]


@pytest.mark.parametrize("error", NO_SPACE, ids=[e[:40] for e in NO_SPACE])
def test_full_storage_is_its_own_kind(error: str) -> None:
    assert is_no_space(error)
    assert not is_transient(error) and not is_auth_error(error)
    assert not RcError("operations/copyfile", 0, error).transient


@pytest.mark.parametrize("error", ["500 Internal Server Error", "/data/quotas_2024/a.h5: permission denied",
                                   "read /data/507/a.h5: connection reset by peer", "403 Forbidden"])
def test_other_errors_are_not_a_full_storage(error: str) -> None:
    assert not is_no_space(error)


def test_a_server_error_page_is_shrunk_to_its_words() -> None:
    assert plain_error(NO_SPACE[3]) == ("unchunked simple update failed: No space left on device: "
                                        "500 Internal Server Error")
    assert plain_error("x: <html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>") == \
        "x: 502 Bad Gateway"
    assert plain_error("plain\n  text") == "plain text"
    assert len(plain_error("y" * 1000)) == 300
