"""The benchmark's own arithmetic and accounting: the figures in the README rest on them."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from benchlib import adopting_orphans, ratio_interval, reap  # tests/bench: on pytest's pythonpath


def test_interval_needs_five_rounds() -> None:
    assert ratio_interval([2.0] * 4, [2.1] * 4) is None
    assert ratio_interval([2.0] * 5, [2.5] * 5) == (0.8, 0.8)


def test_rounds_are_resampled_whole() -> None:
    """Rounds that slow every tool alike (a busy host) must not widen the interval: the reference
    is 0.95x the tool in every round, however much the rounds differ from one another."""
    rnd = random.Random(7)
    tool = [rnd.uniform(2.0, 4.0) for _ in range(30)]
    reference = [0.95 * t for t in tool]
    low, high = ratio_interval(reference, tool) or (0, 0)
    assert low == pytest.approx(0.95) and high == pytest.approx(0.95)


def test_interval_spans_the_noise() -> None:
    rnd = random.Random(3)
    tool = [2.4 + rnd.gauss(0, 0.15) for _ in range(20)]
    reference = [2.3 + rnd.gauss(0, 0.15) for _ in range(20)]
    point = sorted(reference)[10] / sorted(tool)[10]
    low, high = ratio_interval(reference, tool) or (1, 0)
    assert 0.85 < low < point < high < 1.1
    assert high - low > 0.02


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreaper is Linux only")
def test_orphan_cpu_is_collected() -> None:
    """A process left running by the command the bench timed is adopted, and its CPU counted."""
    with adopting_orphans():
        parent = subprocess.run(
            ["sh", "-c", f"{sys.executable} -c 'sum(range(3 * 10**6))' >/dev/null 2>&1 & echo $!"],
            capture_output=True, text=True, check=True)
        orphan = int(parent.stdout)
        cpu = reap(orphan)
    assert cpu is not None and cpu > 0.01
    assert reap(orphan) is None  # collected once; no longer this process's child
    assert reap(1) is None  # init is nobody's child
