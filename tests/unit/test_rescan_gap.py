"""The safety rescan of a sync session is stretched for big trees (issue 24: an idle session's cost
must not grow with its files). A million files took 9 s to rescan: every 10 minutes, 1.5 % of a core."""

from __future__ import annotations

from types import SimpleNamespace

from trayagent.sync.session import RESCAN_DUTY, SyncSession


def _session(rescan_seconds: float) -> SyncSession:
    session = SyncSession.__new__(SyncSession)  # only what the gap reads
    session.rescan_seconds = rescan_seconds
    session.dataset = SimpleNamespace(name="run42")  # type: ignore[assignment]
    return session


def test_a_quick_rescan_keeps_the_configured_interval() -> None:
    assert _session(600.0).rescan_gap(0.2) == 600.0


def test_a_slow_rescan_is_spaced_so_it_costs_at_most_its_share_of_the_time() -> None:
    gap = _session(600.0).rescan_gap(9.0)  # a million files
    assert gap == 9.0 / RESCAN_DUTY and 9.0 / gap <= 0.0005
    assert gap > 600.0
