"""The capacity benchmark's pure helpers: outcomes counted, nearest-rank percentiles, the goals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _capacity_callers import Calls, figures, percentile


def test_calls_count_answered_shed_and_failed_apart() -> None:
    calls = Calls(seconds=2.0)
    for status, latency in ((201, 0.03), (400, 0.01), (429, 0.002), (503, 0.5), (0, 2.0)):
        calls.add(status, latency)
    assert calls.ok == [0.03, 0.01]  # a client error is an answer, not a server failure
    assert (calls.shed, calls.failed) == (1, 2)
    assert calls.goodput == 1.0
    assert Calls().goodput == 0.0


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([], 0.99) is None


def test_figures_meet_the_goals_within_their_bounds() -> None:
    met = figures(c=110.0, capacity=100.0, goodput=90.0, p99=0.1, unloaded_p99=0.05)
    assert met["c_vs_capacity"] == pytest.approx(0.1)
    assert met["goodput_share"] == pytest.approx(0.9)
    assert met["p99_ratio"] == pytest.approx(2.0)
    assert all(met["goals"].values())


def test_figures_missed_or_unknown_are_not_met() -> None:
    missed = figures(c=80.0, capacity=100.0, goodput=85.0, p99=0.3, unloaded_p99=0.1)
    assert missed["goals"] == {"c_within_15pct": False, "goodput_ge_90pct": False, "p99_le_2x": False}
    unknown = figures(c=None, capacity=0.0, goodput=0.0, p99=None, unloaded_p99=None)
    assert unknown["c_vs_capacity"] is None and unknown["goodput_share"] is None
    assert unknown["p99_ratio"] is None and not any(unknown["goals"].values())
