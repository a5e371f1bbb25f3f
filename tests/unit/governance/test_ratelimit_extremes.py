"""No limiter fails open through float arithmetic.

At the extremes the rules allow (a limit of 0.001 or 1e6 calls/s, windows of 1 ms or a day, a cold
factor of 100, a warm-up of 1 ms or an hour) every algorithm still limits, on a fake clock, also
one that reads 31 years of uptime. Arguments outside the float range's comfort (a sub-normal rate
whose ``1 / rate`` is infinite, a window shorter than the time tolerance, a warm-up so short the
slope overflows) are refused by the constructors, as NaN and infinities always were: the rules
never produce them, code that builds limiters directly cannot either.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest

from telemetry.governance.ratelimit import (
    ALGORITHMS,
    ConcurrencyLimiter,
    FixedWindowLimiter,
    LeakyBucketLimiter,
    RateLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
    build_limiter,
)
from telemetry.governance.rules import DAY, LIMIT_MAX, LIMIT_MIN, SECONDS_MIN, GovernanceRules
from telemetry.testing import FakeClock

UPTIME_31_YEARS = 1e9


def admitted_now(limiter: RateLimiter, attempts: int) -> int:
    """Calls admitted out of ``attempts`` made at one instant."""
    return sum(limiter.try_acquire() for _ in range(attempts))


def hint_is_sane(limiter: RateLimiter, most: float) -> None:
    wait = limiter.retry_after()
    # Slack for the clock's rounding: 0.12 us at 1e9 s.
    assert math.isfinite(wait) and 0 <= wait <= most * 1.000001 + 1e-6


# -- the smallest limit: one call, then nothing for a long time -----------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("window", [SECONDS_MIN, 1.0, DAY], ids=["1ms", "1s", "1day"])
def test_the_smallest_limit_admits_one_call(algorithm: str, window: float) -> None:
    clock = FakeClock()
    limiter = build_limiter(
        algorithm, limit=LIMIT_MIN, window=window, warm_up=3600.0, cold_factor=100.0, clock=clock
    )
    assert admitted_now(limiter, 100) == 1
    if algorithm != "concurrency":  # the rest refill with time; a concurrency slot on release
        hint_is_sane(limiter, 1 / LIMIT_MIN * 100)
    clock.advance(min(window / 2, 500.0))  # the buckets refill one call in 1000 s
    assert not limiter.try_acquire()


@pytest.mark.parametrize("algorithm", ["token_bucket", "leaky_bucket"])
def test_the_smallest_rate_refills_after_a_thousand_seconds(algorithm: str) -> None:
    clock = FakeClock()
    limiter = build_limiter(algorithm, limit=LIMIT_MIN, clock=clock)
    assert limiter.try_acquire()
    clock.advance(999.0)
    assert not limiter.try_acquire()
    assert limiter.retry_after() == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()


def test_the_smallest_rate_queues_nobody_for_long() -> None:
    clock = FakeClock()
    limiter = LeakyBucketLimiter(LIMIT_MIN, max_wait=60.0, clock=clock)
    assert limiter.reserve() == 0.0
    assert limiter.reserve() is None  # the next slot is 1000 s away: past max_wait


def test_the_coldest_warm_up_stays_finite() -> None:
    clock = FakeClock()
    limiter = WarmUpLimiter(LIMIT_MIN, warm_up=3600.0, cold_factor=100.0, clock=clock)
    assert limiter.cold_rate == pytest.approx(1e-5)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    assert math.isfinite(limiter.current_rate) and limiter.current_rate > 0
    hint_is_sane(limiter, 1e5)


# -- the largest limit: one call per microsecond --------------------------------------------------


@pytest.mark.parametrize("start", [1000.0, UPTIME_31_YEARS], ids=["boot", "31 years up"])
@pytest.mark.parametrize("make", [
    lambda c: TokenBucketLimiter(LIMIT_MAX, 1, clock=c),
    lambda c: LeakyBucketLimiter(LIMIT_MAX, clock=c),
], ids=["token_bucket", "leaky_bucket"])  # fmt: skip
def test_the_largest_rate_still_limits(make: Callable[[FakeClock], RateLimiter], start: float) -> None:
    clock = FakeClock(start)
    limiter = make(clock)
    # One per microsecond; the clock's own rounding at 1e9 s (0.12 us) may let a second one in.
    assert 1 <= admitted_now(limiter, 100) <= 2
    hint_is_sane(limiter, 2e-6)
    clock.advance(1e-3)
    assert 1 <= admitted_now(limiter, 10_000) <= 2  # the bucket holds one call


@pytest.mark.parametrize("warm_up", [SECONDS_MIN, 3600.0], ids=["1ms", "1h"])
def test_the_largest_warm_up_still_limits(warm_up: float) -> None:
    clock = FakeClock()
    limiter = WarmUpLimiter(LIMIT_MAX, warm_up=warm_up, cold_factor=100.0, clock=clock)
    burst = admitted_now(limiter, 20_000)  # a full cold bucket: one second at 1e4 calls/s
    assert 10_000 <= burst <= 10_001
    assert not limiter.try_acquire()
    assert math.isfinite(limiter.current_rate) and limiter.current_rate <= LIMIT_MAX
    hint_is_sane(limiter, 1.0)


@pytest.mark.parametrize("window", [SECONDS_MIN, DAY], ids=["1ms", "1day"])
@pytest.mark.parametrize("cls", [FixedWindowLimiter, SlidingWindowLimiter])
def test_windows_at_their_bounds_still_limit(cls: Callable[..., RateLimiter], window: float) -> None:
    clock = FakeClock(UPTIME_31_YEARS)
    limiter = cls(3, window, clock=clock)
    assert admitted_now(limiter, 100) == 3
    hint_is_sane(limiter, window)
    clock.advance(window * 2)
    assert admitted_now(limiter, 100) == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_rules_at_their_other_bounds_build_limiters_that_limit(algorithm: str) -> None:
    """Each algorithm from a rule whose other fields sit at their upper bounds, as the engine
    builds it: at one instant no more than the limit passes."""
    rule = GovernanceRules.from_dict(
        {"server": {"methods": {"*": {"rate_limit": {
            "algorithm": algorithm, "limit": 1000, "window": DAY, "burst": 1000, "max_wait": 60,
            "warm_up": 3600, "cold_factor": 100}}}}}
    ).server.methods["*"].rate_limit  # fmt: skip
    assert rule is not None
    limiter = build_limiter(
        rule.algorithm, limit=rule.limit, window=rule.window, burst=rule.burst,
        max_wait=rule.max_wait, warm_up=rule.warm_up, cold_factor=rule.cold_factor,
        clock=FakeClock(),
    )  # fmt: skip
    assert 1 <= admitted_now(limiter, 1010) <= 1000


# -- arguments that would break the arithmetic are refused ----------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TokenBucketLimiter(1e-310), "rate is too small: its inverse overflows"),
        (lambda: TokenBucketLimiter(5e-324), "rate is too small"),
        (lambda: LeakyBucketLimiter(1e-310), "rate is too small"),
        (lambda: WarmUpLimiter(1e-310), "rate is too small"),
        (lambda: WarmUpLimiter(1e-3, cold_factor=1e306), "rate / cold_factor is too small"),
        (lambda: WarmUpLimiter(1.0, warm_up=1e-310), "warm_up is too short for rate"),
        (lambda: TokenBucketLimiter(1.0, 10**400), "burst / rate overflows"),
        (lambda: TokenBucketLimiter(1e-300, 10**10), "burst / rate overflows"),
        (lambda: FixedWindowLimiter(1, 1e-310), "window must be >= 1e-06 seconds"),
        (lambda: SlidingWindowLimiter(1, 1e-9), "window must be >= 1e-06 seconds"),
        (lambda: build_limiter("token_bucket", limit=1e-310), "rate is too small"),
        (lambda: build_limiter("fixed_window", limit=1.0, window=1e-310), "window must be >="),
        (lambda: ConcurrencyLimiter(1, retry_hint=math.nan), "retry_hint must be >= 0"),
    ],
)
def test_arguments_that_break_the_arithmetic_are_refused(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_huge_rates_from_code_are_still_allowed() -> None:
    # The benchmarks measure the hot path with a limiter that never refuses: 1e12 calls/s.
    assert TokenBucketLimiter(1e12).try_acquire()
    assert LeakyBucketLimiter(1e12).try_acquire()
    assert WarmUpLimiter(1e12).try_acquire()
