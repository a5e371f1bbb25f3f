"""Dynamic thresholds: the knee of the throughput -> p99 curve, and the automatic follow step."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from telemetry.panel.thresholds import LoadPoint, Recommendation, follow_step, recommend_limit

LN100 = math.log(100)  # an M/M/1 sojourn time is exponential: p99 = ln(100) / (mu - lambda)
FLOOR = 0.002  # seconds of fixed work (serialization, the network) under the queueing delay


def mm1_p99(mu: float, lam: float, floor: float = FLOOR) -> float:
    return floor + LN100 / (mu - lam)


def ramp(
    mu: float,
    *,
    seed: int,
    n: int = 120,
    start: float = 0.1,
    stop: float = 0.98,
    noise: float = 0.08,
) -> list[LoadPoint]:
    """A load test against an M/M/1 service of rate ``mu``: throughput ramps from start*mu to stop*mu."""
    rng = random.Random(seed)
    points = []
    for i in range(n):
        lam = mu * (start + (stop - start) * i / (n - 1))
        p99 = mm1_p99(mu, lam) * (1 + rng.gauss(0, noise))
        points.append(LoadPoint(lam * (1 + rng.gauss(0, 0.02)), p99))
    return points


def flat(lo: float, hi: float, p99: float = 0.010, n: int = 60) -> list[LoadPoint]:
    """``n`` points evenly spread from lo to hi calls/s, all at the same p99."""
    return [LoadPoint(lo + (hi - lo) * i / (n - 1), p99) for i in range(n)]


def step_curve(xs: Sequence[float], ys: Sequence[float], per_bin: int = 5) -> list[LoadPoint]:
    """``per_bin`` points at each (x, y), so that each x lands in its own bin with median y."""
    return [LoadPoint(x, y) for x, y in zip(xs, ys, strict=True) for _ in range(per_bin)]


def rec(limit: float | None) -> Recommendation:
    return Recommendation(limit=limit, knee=None, baseline_p99=None, reason="", curve=())


# --- the knee of a queueing curve -------------------------------------------------------------------


@pytest.mark.parametrize("mu", [50.0, 1000.0, 20000.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_knee_of_mm1_curve_is_where_p99_reaches_rise_times_baseline(mu: float, seed: int) -> None:
    points = ramp(mu, seed=seed)
    r = recommend_limit(points)
    assert r.limit is not None and r.knee is not None and r.baseline_p99 is not None
    # The model's crossing: p99 = 1.5x its value at the lowest bin's mean load (~0.144 mu).
    width = (0.98 - 0.1) * mu / 10
    baseline = mm1_p99(mu, 0.1 * mu + width / 2)
    crossing = mu - LN100 / (1.5 * baseline - FLOOR)
    assert r.baseline_p99 == pytest.approx(baseline, rel=0.1)
    # The knee is the bin before the first one above the threshold: within about a bin of the crossing.
    assert crossing - 2 * width <= r.knee <= crossing + width
    # Plausible as a rate limit: well inside capacity, well above the lowest load.
    assert 0.3 * mu <= r.knee <= 0.9 * mu
    assert 0.9 * r.knee * 0.9 <= r.limit <= 0.9 * r.knee
    assert "rises above 1.5x" in r.reason and "recommending" in r.reason


def test_knee_moves_with_rise_and_limit_with_headroom() -> None:
    points = ramp(1000.0, seed=7)
    gentle = recommend_limit(points, rise=1.3)
    default = recommend_limit(points)
    steep = recommend_limit(points, rise=3.0)
    assert gentle.knee is not None and default.knee is not None and steep.knee is not None
    assert gentle.knee < default.knee < steep.knee < 1000.0
    full = recommend_limit(points, headroom=1.0)
    half = recommend_limit(points, headroom=0.5)
    assert full.knee == half.knee == default.knee
    assert full.limit is not None and half.limit is not None
    assert 0.9 * default.knee <= full.limit <= default.knee
    assert 0.45 * default.knee <= half.limit <= 0.5 * default.knee


def test_result_does_not_depend_on_point_order() -> None:
    points = ramp(1000.0, seed=4)
    shuffled = list(points)
    random.Random(0).shuffle(shuffled)
    assert recommend_limit(shuffled) == recommend_limit(points)
    assert recommend_limit(iter(points)) == recommend_limit(points)  # any iterable, consumed once


def test_curve_is_binned_mean_throughput_and_median_p99_sorted_without_empty_bins() -> None:
    points = [
        LoadPoint(10, 0.010),
        LoadPoint(11, 0.030),
        LoadPoint(12, 0.011),  # bin [10, 19): median 11 ms
        LoadPoint(95, 0.040),
        LoadPoint(100, 0.050),  # the last bin includes the maximum
        LoadPoint(20, 0.012),
        LoadPoint(21, 0.014),  # bin [19, 28)
        LoadPoint(55, 0.020),  # a lone point in the middle; the other bins are empty
    ]
    r = recommend_limit(points, bins=10)
    assert [p.throughput for p in r.curve] == pytest.approx([11.0, 20.5, 55.0, 97.5])
    assert [p.p99 for p in r.curve] == pytest.approx([0.011, 0.013, 0.020, 0.045])


def test_step_curve_knee_is_the_last_flat_bin_and_limit_rounds_down_to_two_digits() -> None:
    xs = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    ys = [0.010, 0.010, 0.011, 0.010, 0.012, 0.011, 0.030, 0.060, 0.120, 0.250]
    r = recommend_limit(step_curve(xs, ys))
    assert r.baseline_p99 == pytest.approx(0.010)
    assert r.knee == pytest.approx(60)
    assert r.limit == 54.0  # 60 * 0.9
    assert [p.throughput for p in r.curve] == pytest.approx(xs)
    assert r.reason == (
        "p99 rises above 1.5x its low-load value (10 ms -> 30 ms) beyond 60 calls/s: "
        "recommending 54 calls/s (90% of the knee)"
    )
    # Rounding is down, to two significant digits, never above knee * headroom.
    big = recommend_limit(step_curve([x * 137 for x in xs], ys))
    assert big.knee == pytest.approx(60 * 137) and big.limit == 7300.0  # 7398 -> 7300
    small = recommend_limit(step_curve([x * 0.0137 for x in xs], ys))
    assert small.knee == pytest.approx(60 * 0.0137) and small.limit == 0.73  # 0.7398 -> 0.73


def test_rise_in_the_last_bin_only_counts() -> None:
    xs = [10, 20, 30, 40, 50]
    r = recommend_limit(step_curve(xs, [0.010, 0.010, 0.010, 0.010, 0.020]), bins=5)
    assert r.knee == pytest.approx(40) and r.limit == 36.0


def test_rise_that_falls_back_is_noise_and_the_sustained_rise_sets_the_knee() -> None:
    xs = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    ys = [0.010, 0.010, 0.010, 0.030, 0.030, 0.010, 0.010, 0.010, 0.040, 0.080]
    r = recommend_limit(step_curve(xs, ys))
    assert r.knee == pytest.approx(80)


# --- no knee ----------------------------------------------------------------------------------------


def test_flat_curve_has_no_knee_yet() -> None:
    rng = random.Random(3)
    points = [LoadPoint(p.throughput, p.p99 * (1 + rng.gauss(0, 0.1))) for p in flat(50, 800)]
    r = recommend_limit(points)
    assert r.limit is None and r.knee is None
    assert r.baseline_p99 == pytest.approx(0.010, rel=0.15)
    assert len(r.curve) == 10
    assert r.reason.startswith("p99 stays within 1.5x of its low-load value (")
    assert "up to 768 calls/s" in r.reason and "calls/s: no knee yet" in r.reason


def test_mm1_ramp_that_stays_at_low_utilization_has_no_knee() -> None:
    r = recommend_limit(ramp(1000.0, seed=5, start=0.05, stop=0.3))
    assert r.limit is None and r.knee is None and "no knee yet" in r.reason


def test_one_noisy_bin_in_the_middle_does_not_trigger() -> None:
    points = flat(50, 500)
    spiked = [LoadPoint(p.throughput, 0.200) if 230 <= p.throughput < 275 else p for p in points]
    assert sum(p.p99 == 0.200 for p in spiked) >= 3  # a whole bin's median is 20x the baseline
    r = recommend_limit(spiked)
    assert any(p.p99 == 0.200 for p in r.curve)
    assert r.limit is None and "no knee yet" in r.reason


def test_one_noisy_point_does_not_move_a_bin_or_the_baseline() -> None:
    points = flat(50, 500)
    points[0] = LoadPoint(points[0].throughput, 5.0)  # the lowest-load scrape caught a GC pause
    points[30] = LoadPoint(points[30].throughput, 5.0)
    r = recommend_limit(points)
    assert r.baseline_p99 == pytest.approx(0.010)
    assert all(p.p99 == pytest.approx(0.010) for p in r.curve)
    assert r.limit is None


def test_lone_low_load_point_is_topped_up_for_the_baseline() -> None:
    # The lowest bin has a single (noisy) point: the baseline is the median of the three lowest.
    points = [LoadPoint(10, 0.100), *flat(30, 100, n=30)]
    r = recommend_limit(points)
    assert r.curve[0] == LoadPoint(10, 0.100)
    assert r.baseline_p99 == pytest.approx(0.010)
    assert r.limit is None


# --- latency already high at the lowest load -------------------------------------------------------


def test_latency_already_rising_at_the_lowest_observed_load() -> None:
    xs = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
    ys = [0.010, 0.020, 0.040, 0.060, 0.080, 0.100, 0.150, 0.200, 0.300, 0.500]
    r = recommend_limit(step_curve(xs, ys))
    assert r.knee == pytest.approx(100) and r.limit == 90.0
    assert r.reason.startswith("latency already rises at the lowest observed load (100 calls/s")
    assert "recommending 90 calls/s" in r.reason


def test_all_bins_above_a_topped_up_baseline_recommends_below_the_lowest() -> None:
    # The lowest bin's lone point and the two lowest of the next set the baseline; every bin's median
    # is above 1.5x of it, so the rise starts at the very first bin.
    points = [
        LoadPoint(10, 0.050),
        *[LoadPoint(20, y) for y in (0.010, 0.010, 0.050, 0.050, 0.050)],
        *[LoadPoint(x, 0.080) for x in (30, 40, 50, 60) for _ in range(3)],
    ]
    r = recommend_limit(points, bins=5)
    assert r.baseline_p99 == pytest.approx(0.010)
    assert r.knee == pytest.approx(10) and r.limit == 9.0
    assert "already rises at the lowest observed load" in r.reason


def test_ramp_starting_near_capacity_still_recommends_well_below_capacity() -> None:
    # The baseline is relative: a curve seen only from 0.55 mu on puts the knee later, never past mu.
    r = recommend_limit(ramp(1000.0, seed=6, start=0.55, stop=0.99))
    assert r.limit is not None and r.knee is not None
    assert 600 <= r.knee <= 800 and r.limit <= 0.8 * 1000


# --- not enough evidence ----------------------------------------------------------------------------


def test_too_few_points() -> None:
    r = recommend_limit(flat(10, 100, n=5))
    assert r.limit is None and r.knee is None and r.baseline_p99 is None
    assert r.reason == "only 5 usable points, need at least 8 to recommend a limit"
    assert len(r.curve) == 5  # still charted
    one = recommend_limit([LoadPoint(10, 0.01)], min_points=3)
    assert one.reason == "only 1 usable point, need at least 3 to recommend a limit"
    none = recommend_limit([])
    assert none.limit is None and none.curve == ()
    assert none.reason == "no usable points yet (need at least 8)"


def test_narrow_spread() -> None:
    r = recommend_limit(flat(100, 140, n=40))
    assert r.limit is None and r.knee is None and r.baseline_p99 is None
    assert r.reason == (
        "the load has not varied enough (from 100 to 140 calls/s, less than 1.5x) "
        "to show where latency rises"
    )
    assert r.curve  # still charted
    constant = recommend_limit([LoadPoint(50, 0.01)] * 20)
    assert constant.limit is None and "from 50 to 50 calls/s" in constant.reason
    assert constant.curve == (LoadPoint(50, 0.01),)
    assert recommend_limit(flat(100, 140, n=40), min_spread=1.2).reason.startswith("p99 stays within")


def test_unusable_points_are_ignored() -> None:
    points = ramp(1000.0, seed=8)
    junk = [
        LoadPoint(math.nan, 0.01),
        LoadPoint(math.inf, 0.01),
        LoadPoint(-math.inf, 0.01),
        LoadPoint(0.0, 0.01),  # an idle scrape
        LoadPoint(-5.0, 0.01),
        LoadPoint(500.0, math.nan),  # histogram_quantile over no calls
        LoadPoint(500.0, math.inf),
        LoadPoint(500.0, -0.001),
        LoadPoint(1e-9, math.nan),
    ]
    mixed = [*junk[:4], *points[:60], *junk[4:], *points[60:]]
    assert recommend_limit(mixed) == recommend_limit(points)
    few = recommend_limit([*junk, *flat(10, 100, n=3)])
    assert few.reason == "only 3 usable points, need at least 8 to recommend a limit"
    assert recommend_limit(junk).reason == "no usable points yet (need at least 8)"
    # A zero p99 is a measurement (everything under the first bucket), not junk.
    assert len(recommend_limit([LoadPoint(10, 0.0), *flat(20, 100)]).curve) == 10


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rise": 1.0}, "rise"),
        ({"rise": 0.5}, "rise"),
        ({"rise": math.nan}, "rise"),
        ({"rise": math.inf}, "rise"),
        ({"headroom": 0.0}, "headroom"),
        ({"headroom": -0.5}, "headroom"),
        ({"headroom": 1.01}, "headroom"),
        ({"headroom": math.nan}, "headroom"),
        ({"min_points": 1}, "min_points"),
        ({"bins": 1}, "bins"),
        ({"bins": 0}, "bins"),
        ({"min_spread": 0.99}, "min_spread"),
        ({"min_spread": math.nan}, "min_spread"),
    ],
)
def test_parameter_validation(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        recommend_limit(flat(10, 100), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        recommend_limit([], **kwargs)  # type: ignore[arg-type]  # validated before the points


def test_boundary_parameters_are_accepted() -> None:
    r = recommend_limit(flat(10, 100), rise=1.0001, headroom=1.0, min_points=2, bins=2, min_spread=1.0)
    assert r.limit is None and "no knee yet" in r.reason


# --- follow_step ------------------------------------------------------------------------------------


def test_follow_step_without_recommendation_leaves_the_limit() -> None:
    assert follow_step(100.0, rec(None), minimum=10, maximum=1000) is None
    assert follow_step(None, rec(None), minimum=10, maximum=1000) is None
    assert follow_step(None, rec(math.nan), minimum=10, maximum=1000) is None


def test_follow_step_sets_the_first_limit_clamped() -> None:
    assert follow_step(None, rec(450.0), minimum=10, maximum=1000) == 450.0
    assert follow_step(None, rec(5.0), minimum=10, maximum=1000) == 10
    assert follow_step(None, rec(5000.0), minimum=10, maximum=1000) == 1000
    assert follow_step(None, rec(7.0), minimum=50, maximum=50) == 50
    # A current limit that is not a positive finite number is no limit to keep.
    assert follow_step(0.0, rec(450.0), minimum=10, maximum=1000) == 450.0
    assert follow_step(math.nan, rec(450.0), minimum=10, maximum=1000) == 450.0


def test_follow_step_hysteresis() -> None:
    assert follow_step(100.0, rec(105.0), minimum=10, maximum=1000) is None  # 5% < 10%
    assert follow_step(100.0, rec(91.0), minimum=10, maximum=1000) is None
    assert follow_step(100.0, rec(100.0), minimum=10, maximum=1000) is None
    assert follow_step(100.0, rec(110.0), minimum=10, maximum=1000) == 110.0  # exactly 10% moves
    assert follow_step(100.0, rec(85.0), minimum=10, maximum=1000) == 85.0
    assert follow_step(100.0, rec(105.0), minimum=10, maximum=1000, min_change=0.05) == 105.0
    assert follow_step(100.0, rec(100.5), minimum=10, maximum=1000, min_change=0.0) == 100.5
    assert follow_step(100.0, rec(100.0), minimum=10, maximum=1000, min_change=0.0) == 100.0


def test_follow_step_hysteresis_applies_to_the_clamped_value() -> None:
    # Already at the ceiling: a recommendation far above it changes nothing.
    assert follow_step(1000.0, rec(5000.0), minimum=10, maximum=1000) is None
    assert follow_step(950.0, rec(5000.0), minimum=10, maximum=1000) is None  # 1000 is +5%
    assert follow_step(500.0, rec(5000.0), minimum=10, maximum=1000) == 1000
    # A current limit outside the bounds (set by hand) is brought back within them.
    assert follow_step(2000.0, rec(5000.0), minimum=10, maximum=1000) == 1000
    assert follow_step(1.0, rec(0.5), minimum=10, maximum=1000) == 10


def test_follow_step_tracks_recommend_limit() -> None:
    r = recommend_limit(ramp(1000.0, seed=1))
    assert r.limit is not None
    assert follow_step(None, r, minimum=1, maximum=10_000) == r.limit
    assert follow_step(r.limit, r, minimum=1, maximum=10_000) is None


@pytest.mark.parametrize(
    ("minimum", "maximum", "min_change", "name"),
    [
        (0.0, 100.0, 0.1, "minimum"),
        (-1.0, 100.0, 0.1, "minimum"),
        (math.nan, 100.0, 0.1, "minimum"),
        (10.0, 5.0, 0.1, "maximum"),
        (10.0, math.nan, 0.1, "maximum"),
        (10.0, 100.0, -0.1, "min_change"),
    ],
)
def test_follow_step_validation(minimum: float, maximum: float, min_change: float, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        follow_step(50.0, rec(50.0), minimum=minimum, maximum=maximum, min_change=min_change)
    with pytest.raises(ValueError, match=name):
        follow_step(None, rec(None), minimum=minimum, maximum=maximum, min_change=min_change)
