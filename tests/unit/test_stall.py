"""The stall watch's decisions (pure logic: a clock, the job's counters and the probe are given)."""

from __future__ import annotations

from trayagent.errors import StorageError
from trayagent.storage.stall import StallWatch


class Job:
    def __init__(self) -> None:
        self.now = 0.0
        self.counters = (0, 0, 0)
        self.probes = 0
        self.storage: StorageError | None = None

    def probe(self) -> None:
        self.probes += 1
        if self.storage is not None:
            raise self.storage

    def watch(self) -> StallWatch:
        return StallWatch(lambda jobid: self.counters, self.probe, quiet=5.0, clock=lambda: self.now)

    def run(self, watch: StallWatch, seconds: float, moving: bool = False) -> list[str]:
        """Poll every 50 ms for ``seconds``; the reasons to stop that came up."""
        reasons = []
        for _ in range(int(seconds / 0.05)):
            self.now += 0.05
            if moving:
                self.counters = (self.counters[0] + 1, 0, 0)
            if reason := watch(1):
                reasons.append(reason)
        return reasons


def test_a_moving_job_is_never_probed() -> None:
    job = Job()
    job.storage = StorageError("unreachable", transient=True)
    assert job.run(job.watch(), 60, moving=True) == []
    assert job.probes == 0


def test_a_quiet_job_with_storage_answering_goes_on() -> None:
    job = Job()
    watch = job.watch()
    assert job.run(watch, 30) == []
    assert 4 <= job.probes <= 6  # once per quiet spell of 5 s, not on every poll


def test_a_quiet_job_with_storage_gone_is_stopped_with_rclones_words() -> None:
    job = Job()
    watch = job.watch()
    assert job.run(watch, 3, moving=True) == []
    cause = Exception()
    cause.error = "dial tcp 127.0.0.1:1: connect: connection refused"  # type: ignore[attr-defined]
    job.storage = StorageError("storage x: connection refused", transient=True)
    job.storage.__cause__ = cause
    reasons = job.run(watch, 7)
    assert reasons == ["dial tcp 127.0.0.1:1: connect: connection refused"]
    assert job.probes == 1


def test_a_refusal_that_retrying_cannot_fix_is_not_a_stall() -> None:
    job = Job()
    job.storage = StorageError("wrong password", transient=False)
    assert job.run(job.watch(), 12) == []
    assert job.probes >= 1
