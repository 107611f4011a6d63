"""What the notifications say (issue 19.2, 19.5, 19.8): a refused storage password says that uploads
wait and how to log in; an unreachable storage says what to check, not rclone's raw text; one
subject keeps one bubble (the sender gets the subject, so a second notice replaces the first)."""

from __future__ import annotations

from trayagent.agent.notify import Notifications


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A sender that replaces bubbles by subject (like DBusSender): Notifications passes the subject."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bool, str]] = []

    def __call__(self, title: str, message: str, urgent: bool = False) -> None:
        self.keyed(title, message, urgent, "")

    def keyed(self, title: str, message: str, urgent: bool, key: str) -> None:
        self.sent.append((title, message, urgent, key))


def recorder() -> tuple[list[tuple[str, str, bool, str]], Clock, Notifications]:
    send, clock = Recorder(), Clock()
    return send.sent, clock, Notifications(send, clock=clock, unreachable_after=300)


def test_storage_login_says_uploads_wait_and_how_to_log_in() -> None:
    sent, _, notes = recorder()
    notes.login_needed("storage")
    notes.login_needed("storage")
    ((title, message, urgent, _),) = sent
    assert "Uploads wait" in message and "Log in" in message and "Uploads continue" not in message
    assert urgent


def test_unreachable_storage_says_what_to_check_not_rclones_text() -> None:
    sent, clock, notes = recorder()
    raw = "Mkcol \"https://dav.example.org/x\": dial tcp 10.0.0.5:443: connect: no route to host"
    notes.storage_state(False, raw, "dav.example.org")
    clock.now += 301
    notes.storage_state(False, raw, "dav.example.org")
    clock.now += 60
    notes.storage_state(False, raw, "dav.example.org")
    ((title, message, urgent, key),) = sent
    assert title == "Storage unreachable" and key == "unreachable"
    assert "dav.example.org" in message and "network" in message and "Retry now" in message
    assert "dial tcp" not in message and "Mkcol" not in message


def test_failure_notices_carry_their_subject_for_replacement() -> None:
    sent, clock, notes = recorder()
    notes.file_failed("run42", "/data/a: permission denied")
    notes.flush(force=True)
    clock.now += 20
    notes.file_failed("run42", "/data/b: permission denied")
    notes.flush(force=True)
    assert [key for *_, key in sent] == ["failed:run42", "failed:run42"]
