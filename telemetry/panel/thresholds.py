"""Dynamic thresholds: recommend a rate limit from live (throughput, p99) samples.

The classic way to choose a rate limit is a load test: raise the offered load and watch p99 latency.
It stays close to its low-load value while the service has spare capacity, then climbs steeply once
requests start to queue. The limit belongs a little below that knee. :func:`recommend_limit` finds the
knee in points collected from live metrics over the last minutes, and :func:`follow_step` is the
automatic mode that keeps a rule following the recommendation within bounds.

The algorithm (pure, deterministic, stdlib only):

1. Keep the usable points: finite, positive throughput and finite, non-negative p99.
2. Refuse to guess when there are fewer than ``min_points`` of them, or when the load has not varied
   enough (``max / min < min_spread``): a narrow band of load cannot show where latency rises.
3. Bin the points by throughput into ``bins`` equal-width bins between the lowest and the highest
   throughput and drop the empty ones. A bin's x is the mean throughput of its points, its y the
   median p99, so one noisy point in a bin of three or more does not move it.
4. Baseline: the median p99 of the points in the lowest-throughput bin. When that bin holds fewer than
   three points, it is topped up with the next-lowest-throughput points to three (or as many as there
   are), so a single noisy scrape at low load cannot set the baseline on its own.
5. Knee: the first bin whose p99 exceeds ``rise * baseline`` and stays above it in every following
   bin (or is the last bin) marks the rise; the knee is the x of the bin just before it. A single noisy
   bin, or a rise that falls back, is not a knee. The limit is ``knee * headroom`` rounded *down* to
   two significant digits (a rate limit errs on the safe side).
6. When the rise starts at the first or second bin, there is no flat part to speak of: latency already
   rises at the lowest observed load, the knee may be lower still, and the limit is the lowest bin's
   x times ``headroom``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LoadPoint", "Recommendation", "follow_step", "recommend_limit"]

# The baseline is the median of at least this many low-load points (when there are that many).
_BASELINE_POINTS = 3
# Significant digits kept in a recommended limit.
_LIMIT_DIGITS = 2


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """One sample: the throughput over a window and the p99 latency over the same window."""

    throughput: float  # calls per second
    p99: float  # seconds


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The result of :func:`recommend_limit`, with the evidence to chart."""

    limit: float | None  # calls/s to set; None when the evidence does not show a knee
    knee: float | None  # throughput where p99 starts to rise
    baseline_p99: float | None  # p99 at low load
    reason: str  # one human sentence explaining the result (shown in the panel)
    curve: tuple[LoadPoint, ...]  # the binned curve (throughput -> median p99), sorted by throughput


def recommend_limit(
    points: Iterable[LoadPoint],
    *,
    rise: float = 1.5,
    headroom: float = 0.9,
    min_points: int = 8,
    bins: int = 10,
    min_spread: float = 1.5,
) -> Recommendation:
    """Recommend a rate limit (calls/s) from the knee of the throughput -> p99 curve.

    ``rise``: how many times the low-load p99 counts as "latency rises" (> 1). ``headroom``: the
    fraction of the knee to recommend (0 < headroom <= 1). ``min_points``: usable points needed (>= 2).
    ``bins``: throughput bins (>= 2). ``min_spread``: the max/min throughput ratio the points must span
    (>= 1). The curve is returned whenever there is a usable point, so the panel can chart it even when
    there is no recommendation.
    """
    _check_parameters(
        rise=rise, headroom=headroom, min_points=min_points, bins=bins, min_spread=min_spread
    )
    usable = sorted((p for p in points if _usable(p)), key=lambda p: (p.throughput, p.p99))
    if not usable:
        return Recommendation(None, None, None, f"no usable points yet (need at least {min_points})", ())
    groups = _bin(usable, bins)
    curve = tuple(
        LoadPoint(statistics.fmean(p.throughput for p in g), statistics.median(p.p99 for p in g))
        for g in groups
    )
    lo, hi = usable[0].throughput, usable[-1].throughput

    if len(usable) < min_points:
        reason = (
            f"only {len(usable)} usable point{'s' if len(usable) != 1 else ''}, "
            f"need at least {min_points} to recommend a limit"
        )
        return Recommendation(None, None, None, reason, curve)
    if hi / lo < min_spread:
        reason = (
            f"the load has not varied enough (from {_rate(lo)} to {_rate(hi)} calls/s, "
            f"less than {min_spread:g}x) to show where latency rises"
        )
        return Recommendation(None, None, None, reason, curve)

    low = groups[0] if len(groups[0]) >= _BASELINE_POINTS else usable[:_BASELINE_POINTS]
    baseline = statistics.median(p.p99 for p in low)
    threshold = rise * baseline

    start = _sustained_rise(curve, threshold)
    if start is None:
        reason = (
            f"p99 stays within {rise:g}x of its low-load value ({_ms(baseline)}) up to "
            f"{_rate(curve[-1].throughput)} calls/s: no knee yet, the service has not been loaded "
            f"enough to show where latency rises"
        )
        return Recommendation(None, None, baseline, reason, curve)

    knee = curve[max(start - 1, 0)].throughput  # the last point before the sustained rise
    limit = _round_down(knee * headroom)
    if start <= 1:
        reason = (
            f"latency already rises at the lowest observed load ({_rate(knee)} calls/s, p99 "
            f"{_ms(curve[start].p99)} vs {_ms(baseline)} at the lowest load): recommending "
            f"{_rate(limit)} calls/s, though the knee may be lower still"
        )
    else:
        reason = (
            f"p99 rises above {rise:g}x its low-load value ({_ms(baseline)} -> "
            f"{_ms(curve[start].p99)}) beyond {_rate(knee)} calls/s: recommending "
            f"{_rate(limit)} calls/s ({headroom:.0%} of the knee)"
        )
    return Recommendation(limit, knee, baseline, reason, curve)


def follow_step(
    current: float | None,
    recommendation: Recommendation,
    *,
    minimum: float,
    maximum: float,
    min_change: float = 0.1,
) -> float | None:
    """The automatic mode: the new limit to write, or None to leave the current one.

    The recommended limit is clamped to ``[minimum, maximum]``; it is written when there is no current
    limit (None, or not a positive finite number) or when it differs from the current one by at least
    ``min_change`` relative to it (hysteresis: rules are not rewritten for noise).
    """
    if not minimum > 0 or not math.isfinite(minimum):
        raise ValueError(f"minimum must be a finite number > 0, got {minimum!r}")
    if not maximum >= minimum:
        raise ValueError(f"maximum must be >= minimum ({minimum!r}), got {maximum!r}")
    if not min_change >= 0:
        raise ValueError(f"min_change must be >= 0, got {min_change!r}")
    if recommendation.limit is None or math.isnan(recommendation.limit):
        return None
    target = min(max(recommendation.limit, minimum), maximum)
    if current is None or not (current > 0 and math.isfinite(current)):
        return target
    if abs(target - current) / current < min_change:
        return None
    return target


def _check_parameters(
    *, rise: float, headroom: float, min_points: int, bins: int, min_spread: float
) -> None:
    """Refuse the parameters of :func:`recommend_limit` that make no sense, naming the one."""
    if not rise > 1 or not math.isfinite(rise):
        raise ValueError(f"rise must be a finite number > 1, got {rise!r}")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be in (0, 1], got {headroom!r}")
    if min_points < 2:
        raise ValueError(f"min_points must be >= 2, got {min_points!r}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins!r}")
    if not min_spread >= 1:
        raise ValueError(f"min_spread must be >= 1, got {min_spread!r}")


def _usable(point: LoadPoint) -> bool:
    t, p = point.throughput, point.p99
    return math.isfinite(t) and t > 0 and math.isfinite(p) and p >= 0


def _bin(points: list[LoadPoint], bins: int) -> list[list[LoadPoint]]:
    """Equal-width throughput bins between the lowest and highest point; empty bins dropped."""
    lo, hi = points[0].throughput, points[-1].throughput
    width = (hi - lo) / bins
    groups: list[list[LoadPoint]] = [[] for _ in range(bins)]
    for p in points:
        index = min(int((p.throughput - lo) / width), bins - 1) if width > 0 else 0
        groups[index].append(p)
    return [g for g in groups if g]


def _sustained_rise(curve: tuple[LoadPoint, ...], threshold: float) -> int | None:
    """Index of the first bin above ``threshold`` from which every later bin stays above it."""
    start: int | None = None
    for i, point in enumerate(curve):
        if point.p99 > threshold:
            if start is None:
                start = i
        else:
            start = None  # fell back: what rose before was noise
    return start


def _round_down(value: float) -> float:
    """``value`` rounded down to two significant digits (never to zero for a positive value)."""
    exponent = math.floor(math.log10(value)) - (_LIMIT_DIGITS - 1)
    step = 10.0**exponent
    # The epsilon absorbs float error (0.9 * 100 must stay 90, not drop to 89).
    units = math.floor(value / step * (1 + 1e-9))
    return round(units * step, max(0, -exponent))


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms"
