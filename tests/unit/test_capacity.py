"""The capacity test's analysis on synthetic curves: the three points A, B, C and the limit."""

from __future__ import annotations

import math
import random

import pytest

from telemetry.load.capacity import (
    Step,
    analyse,
    manual_estimate,
    recommended_burst,
    recommended_concurrency,
    round_down,
)


def curve(capacity: float = 100.0, base: float = 0.010, rates: range = range(10, 160, 10)) -> list[Step]:
    """An M/M/1-like service: goodput follows the offered load up to ``capacity`` then falls as
    overload wastes work; p99 is flat at low utilisation and climbs as it nears 1."""
    steps = []
    for offered in rates:
        load = offered / capacity
        if load < 1:
            goodput, p99 = float(offered), base / (1 - min(load, 0.95)) ** 1.5
        else:
            goodput, p99 = capacity * (1.6 - 0.6 * load), base * 40 * load
        steps.append(Step(offered=offered, goodput=max(goodput, 0.0), p99=p99, cpu=goodput * 0.009))
    return steps


def test_flat_then_knee_then_collapse_gives_three_ordered_points() -> None:
    points = analyse(curve())
    assert points.enough and points.baseline_p99 is not None
    assert points.a is not None and points.b is not None and points.c is not None
    assert points.a.offered < points.b.offered <= points.c.offered
    assert points.a.p99 <= 1.5 * points.baseline_p99
    assert points.b.p99 >= 2 * points.baseline_p99
    assert points.c.goodput == max(s.goodput for s in points.steps)
    assert points.c.offered == 100  # the highest goodput is at capacity
    assert points.limit == round_down(0.8 * points.a.goodput)
    assert "recommending" in points.reason


def test_choosing_b_recommends_its_goodput_with_the_headroom_asked() -> None:
    points = analyse(curve(), choice="B", headroom=0.9)
    assert points.b is not None
    assert points.limit == round_down(0.9 * points.b.goodput)
    assert points.limit is not None and points.a is not None and points.limit > 0.8 * points.a.goodput


def test_noise_moves_the_points_little() -> None:
    rng = random.Random(7)
    noisy = [
        Step(s.offered, s.goodput * rng.uniform(0.97, 1.03), s.p99 * rng.uniform(0.9, 1.1))
        for s in curve()
    ]
    clean, shaken = analyse(curve()), analyse(noisy)
    assert clean.a is not None and shaken.a is not None and shaken.c is not None
    assert abs(shaken.a.offered - clean.a.offered) <= 20
    assert 90 <= shaken.c.offered <= 110
    assert shaken.limit is not None


def test_a_curve_that_never_collapses_has_no_b_and_says_so() -> None:
    steady = [Step(offered=r, goodput=r * 0.99, p99=0.010 + r * 1e-6) for r in range(10, 110, 10)]
    points = analyse(steady)
    assert points.b is None
    assert points.a is not None and points.a.offered == 100
    assert points.c is not None and points.c.offered == 100
    assert "no collapse within the ceiling" in points.reason
    assert points.limit == 79.0  # 0.8 * 99 rounded down to two digits
    assert analyse(steady, choice="B").limit is None


def test_too_few_steps_is_not_enough_data() -> None:
    points = analyse(curve()[:3])
    assert not points.enough
    assert points.limit is None and points.a is None and points.c is None
    assert points.reason.startswith("not enough data: 3 usable step(s), need at least 4")


def test_unusable_steps_are_left_out() -> None:
    bad = [Step(10, math.nan, 0.01), Step(0, 0, 0.01), Step(20, 20, math.inf), Step(30, 30, -1)]
    points = analyse(bad + curve()[:2])
    assert len(points.steps) == 2 and not points.enough


def test_latency_rising_early_puts_a_at_the_lowest_steps() -> None:
    rising = [Step(offered=r, goodput=r, p99=0.01 * (r / 10) ** 2) for r in range(10, 60, 10)]
    points = analyse(rising)
    assert points.a is not None and points.a.offered <= 20  # only the lowest steps are "flat"
    worse = [Step(offered=r, goodput=10.0, p99=0.01 * r) for r in range(10, 60, 10)]
    assert analyse(worse).a is not None  # the first step is always "rising"
    assert analyse(worse).a.offered == 10  # type: ignore[union-attr]


def test_the_manual_estimate_beside_the_recommendation() -> None:
    assert manual_estimate(20, 4) == 200  # two 10 ms database calls on 4 cores
    assert manual_estimate(5, 1, instances=3) == 600
    # 9 ms of CPU per call on one core: about 111 calls/s, the synthetic service's capacity
    points = analyse(curve())
    assert points.manual is not None and 105 <= points.manual <= 112
    with pytest.raises(ValueError, match="per_call_ms"):
        manual_estimate(0, 1)


def test_parameters_are_checked_and_the_result_serialises() -> None:
    with pytest.raises(ValueError, match="choice"):
        analyse(curve(), choice="C")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="headroom"):
        analyse(curve(), headroom=0)
    with pytest.raises(ValueError, match="high >= flat"):
        analyse(curve(), flat=2.5, high=2.0)
    data = analyse(curve()).to_dict()
    assert set(data) >= {"A", "B", "C", "limit", "reason", "manual_estimate", "steps"}
    assert data["A"]["offered"] > 0
    assert round_down(0.8 * 100) == 80 and round_down(1234) == 1200 and round_down(0) == 0


def test_the_limit_comes_with_a_burst_of_one_low_load_latency() -> None:
    """Little's law: the calls arriving at the limit's rate within the low-load p99."""
    points = analyse(curve(base=0.050), choice="B", headroom=0.9)
    assert points.limit is not None and points.baseline_p99 is not None
    assert points.burst == max(1, math.floor(points.limit * points.baseline_p99))
    assert f"burst {points.burst}" in points.reason and points.to_dict()["burst"] == points.burst
    assert recommended_burst(24, 0.0995) == 2
    assert recommended_burst(24, 0.001) == 1  # at least one call
    assert recommended_burst(10, 30.0) == 10  # at most one second's worth, the bucket's default
    assert analyse(curve()[:2]).burst is None  # no limit, no burst
    for bad in ((0, 0.1), (math.inf, 0.1), (10, -1), (10, math.nan)):
        with pytest.raises(ValueError, match="finite limit"):
            recommended_burst(*bad)


def test_the_baseline_is_taken_at_low_load_only() -> None:
    """Eight steps from 0.25x to 1.5x the estimate put the third near the knee; with p99 read from
    histogram buckets (0.1 then 0.25 s) a baseline that counted it hid B. Seen on the demo shop."""
    measured = [
        (10, 10.0, 0.099), (17.1, 17.2, 0.218), (24.3, 24.3, 0.247), (31.4, 26.8, 0.247),
        (38.6, 28.7, 0.247), (45.7, 26.4, 0.246), (52.9, 29.0, 0.247), (60, 28.3, 0.246),
    ]  # fmt: skip
    points = analyse([Step(o, g, p) for o, g, p in measured], choice="B", headroom=0.9)
    assert points.baseline_p99 == 0.099  # the one step under half of C's goodput
    assert points.b is not None and points.b.offered == 52.9 and points.limit == 26
    assert points.burst == 2  # 26/s within 99 ms


def test_a_cap_on_calls_in_flight_comes_with_b() -> None:
    """C's goodput per instance within the low-load p99, rounded up: the work in flight that keeps
    an instance at its highest goodput (on the demo shop: 28.8/s within 99.5 ms, a cap of 3)."""
    measured = [
        (10, 10.0, 0.0995), (17.1, 17.2, 0.218), (24.3, 24.3, 0.247), (31.4, 26.8, 0.247),
        (38.6, 28.8, 0.247), (45.7, 26.4, 0.246), (52.9, 28.7, 0.247), (60, 28.3, 0.246),
    ]  # fmt: skip
    points = analyse([Step(o, g, p) for o, g, p in measured], choice="B", headroom=0.9)
    assert points.concurrency == 3 and points.to_dict()["concurrency"] == 3
    assert "a cap of 3 call(s) in flight per instance" in points.reason
    assert "instance count unknown, taken as 1" in points.reason  # no CPU series counted them
    # Two instances: C's goodput is the service's, the cap each instance's.
    doubled = [Step(o * 2, g * 2, p, instances=2) for o, g, p in measured]
    assert analyse(doubled, choice="B").concurrency == 3
    assert "unknown" not in analyse(doubled, choice="B").reason
    # A service that served nothing: no cap, and no failure either.
    idle = [Step(10, 0.0, 0.1), Step(20, 0.0, 0.01), Step(30, 0.0, 0.01), Step(40, 0.0, 0.01)]
    assert analyse(idle).concurrency is None
    assert analyse(curve(), choice="A").concurrency is not None  # B found, whatever the choice
    # No B (the test never reached capacity): C is not the capacity, no cap from it.
    steady = [Step(offered=r, goodput=r * 0.99, p99=0.010 + r * 1e-6) for r in range(10, 110, 10)]
    calm = analyse(steady)
    assert calm.b is None and calm.concurrency is None and "cap" not in calm.reason


def test_recommended_concurrency_rounds_up_within_bounds() -> None:
    assert recommended_concurrency(28.8, 0.0995) == 3
    assert recommended_concurrency(20, 0.1) == 2  # exactly 2, not 3 from a rounding error
    assert recommended_concurrency(1, 0.001) == 1  # at least one call
    assert recommended_concurrency(1e6, 60) == 1_000_000  # the rules' bound
    for bad in ((0, 0.1), (math.inf, 0.1), (10, -1), (10, math.nan)):
        with pytest.raises(ValueError, match="finite rate"):
            recommended_concurrency(*bad)
