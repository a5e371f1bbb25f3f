"""What every rate limiter does alike: retry_after is zero while admissible and positive after a
refusal, exact counts from eight threads hammering one budget, and slotted instances.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest

from rate_limiters.support import T0
from telemetry.governance.ratelimit import (
    ConcurrencyLimiter,
    FixedWindowLimiter,
    LeakyBucketLimiter,
    RateLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
)
from telemetry.testing.clock import FakeClock

# --------------------------------------------------------------------------- shared behaviour


def _all_limiters(clock: FakeClock) -> list[RateLimiter]:
    return [
        ConcurrencyLimiter(1, clock=clock),
        FixedWindowLimiter(1, clock=clock),
        SlidingWindowLimiter(1, clock=clock),
        TokenBucketLimiter(1.0, clock=clock),
        LeakyBucketLimiter(1.0, clock=clock),
        WarmUpLimiter(3.0, clock=clock),
    ]


def test_retry_after_is_zero_when_admissible_and_positive_after_refusal(clock: FakeClock) -> None:
    for lim in _all_limiters(clock):
        assert lim.retry_after() == 0.0, lim
        while lim.try_acquire():
            pass
        assert lim.retry_after() > 0.0, lim
        lim.release()  # a no-op except for the concurrency limiter


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda c: FixedWindowLimiter(1000, clock=c), 1000),
        (lambda c: SlidingWindowLimiter(1000, clock=c), 1000),
        (lambda c: TokenBucketLimiter(1.0, 1000, clock=c), 1000),
        (lambda c: LeakyBucketLimiter(1.0, clock=c), 1),
        (lambda c: WarmUpLimiter(3000.0, clock=c), 1000),
        (lambda c: ConcurrencyLimiter(1000, clock=c), 1000),
    ],
    ids=["fixed", "sliding", "token", "leaky", "warm_up", "concurrency"],
)
def test_exact_count_from_eight_threads(make: Callable[[FakeClock], RateLimiter], expected: int) -> None:
    clock = FakeClock(T0)  # frozen: every admission comes out of one budget
    lim = make(clock)
    start = threading.Barrier(8)
    counts = [0] * 8

    def hammer(i: int) -> None:
        start.wait()
        counts[i] = sum(lim.try_acquire() for _ in range(500))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows: interleave the calls
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert sum(counts) == expected


def test_limiters_are_slotted() -> None:
    for lim in _all_limiters(FakeClock()):
        assert not hasattr(lim, "__dict__"), type(lim).__name__
