"""Building rate limiters: invalid values and wrong types name the argument, and build_limiter maps
every algorithm with its settings (counting limits rounded down, unknown algorithms refused).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from telemetry.governance.ratelimit import (
    ALGORITHMS,
    ConcurrencyLimiter,
    FixedWindowLimiter,
    LeakyBucketLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
    build_limiter,
)
from telemetry.testing.clock import FakeClock

# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ConcurrencyLimiter(0), "max_concurrent must be > 0, got 0"),
        (lambda: ConcurrencyLimiter(1, retry_hint=-1.0), "retry_hint must be >= 0"),
        (lambda: FixedWindowLimiter(0), "limit must be > 0, got 0"),
        (lambda: FixedWindowLimiter(1, 0.0), "window must be > 0"),
        (lambda: SlidingWindowLimiter(-1), "limit must be > 0, got -1"),
        (lambda: SlidingWindowLimiter(1, -2.0), "window must be > 0"),
        (lambda: SlidingWindowLimiter(1, buckets=0), "buckets must be > 0, got 0"),
        (lambda: TokenBucketLimiter(0.0), "rate must be > 0"),
        (lambda: TokenBucketLimiter(math.inf), "rate must be > 0 and finite"),
        (lambda: TokenBucketLimiter(math.nan), "rate must be > 0"),
        (lambda: TokenBucketLimiter(1.0, 0), "burst must be > 0, got 0"),
        (lambda: LeakyBucketLimiter(-1.0), "rate must be > 0"),
        (lambda: LeakyBucketLimiter(1.0, max_wait=-0.1), "max_wait must be >= 0"),
        (lambda: WarmUpLimiter(0.0), "rate must be > 0"),
        (lambda: WarmUpLimiter(1.0, warm_up=0.0), "warm_up must be > 0"),
        (lambda: WarmUpLimiter(1.0, cold_factor=0.5), "cold_factor must be >= 1, got 0.5"),
    ],
)
def test_invalid_arguments_name_the_argument(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FixedWindowLimiter(2.5), "limit must be an int, got 2.5"),  # type: ignore[arg-type]
        (lambda: ConcurrencyLimiter(True), "max_concurrent must be an int, got True"),
        (lambda: TokenBucketLimiter("5"), "rate must be a number"),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_name_the_argument(make: Callable[[], object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make()


# --------------------------------------------------------------------------- factory


def test_build_limiter_maps_every_algorithm(clock: FakeClock) -> None:
    common = {"window": 2.0, "burst": 7, "max_wait": 0.5, "warm_up": 4.0, "cold_factor": 2.0}
    built = {
        name: build_limiter(name, limit=20.0, clock=clock, **common)  # type: ignore[arg-type]
        for name in ALGORITHMS
    }
    assert set(ALGORITHMS) == {
        "concurrency",
        "fixed_window",
        "sliding_window",
        "token_bucket",
        "leaky_bucket",
        "warm_up",
    }
    conc = built["concurrency"]
    assert isinstance(conc, ConcurrencyLimiter) and conc.max_concurrent == 20
    fixed = built["fixed_window"]
    assert isinstance(fixed, FixedWindowLimiter) and (fixed.limit, fixed.window) == (20, 2.0)
    sliding = built["sliding_window"]
    assert isinstance(sliding, SlidingWindowLimiter) and (sliding.limit, sliding.window) == (20, 2.0)
    token = built["token_bucket"]
    assert isinstance(token, TokenBucketLimiter) and (token.rate, token.burst) == (20.0, 7)
    leaky = built["leaky_bucket"]
    assert isinstance(leaky, LeakyBucketLimiter) and (leaky.rate, leaky.max_wait) == (20.0, 0.5)
    warm = built["warm_up"]
    assert isinstance(warm, WarmUpLimiter)
    assert (warm.rate, warm.warm_up, warm.cold_factor) == (20.0, 4.0, 2.0)


def test_build_limiter_exact_signature_call(clock: FakeClock) -> None:
    lim = build_limiter(
        "token_bucket",
        limit=5,
        window=1.0,
        burst=None,
        max_wait=0.0,
        warm_up=10.0,
        cold_factor=3.0,
        clock=clock,
    )
    assert isinstance(lim, TokenBucketLimiter) and lim.burst == 5


def test_build_limiter_rounds_counting_limits_down(clock: FakeClock) -> None:
    lim = build_limiter("fixed_window", limit=100 / 3, clock=clock)  # a cluster share
    assert isinstance(lim, FixedWindowLimiter) and lim.limit == 33
    tiny = build_limiter("concurrency", limit=0.4, clock=clock)
    assert isinstance(tiny, ConcurrencyLimiter) and tiny.max_concurrent == 1
    with pytest.raises(ValueError, match="limit must be > 0"):
        build_limiter("sliding_window", limit=0, clock=clock)


def test_build_limiter_rejects_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="'gcra'") as err:
        build_limiter("gcra", limit=1.0)
    for name in ALGORITHMS:
        assert name in str(err.value)
