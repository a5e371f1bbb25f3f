"""Rate limiters, driven by a FakeClock: no sleeps, exact counts.

Time steps are binary fractions (0.25, 1/64 ...) wherever a count must be exact, so float rounding
never decides a test; the 1 ns tolerance is checked separately with decimal steps.
"""

from __future__ import annotations

import math
import sys
import threading
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
from telemetry.testing.clock import FakeClock

T0 = 1000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def admitted(limiter: RateLimiter, attempts: int) -> int:
    return sum(limiter.try_acquire() for _ in range(attempts))


def set_time(clock: FakeClock, t: float) -> None:
    clock.advance(t - clock())


# --------------------------------------------------------------------------- concurrency


def test_concurrency_counts_calls_in_flight() -> None:
    lim = ConcurrencyLimiter(2)
    assert lim.retry_after() == 0.0
    assert lim.try_acquire() and lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.in_flight == 2
    assert lim.retry_after() == 0.05  # the constant hint: it cannot know when a call ends
    lim.release()
    assert lim.in_flight == 1
    assert lim.try_acquire()
    assert not lim.try_acquire()


def test_concurrency_release_never_goes_below_zero() -> None:
    lim = ConcurrencyLimiter(1, retry_hint=0.2)
    lim.release()
    lim.release()
    assert lim.in_flight == 0
    assert lim.try_acquire()
    assert not lim.try_acquire()  # extra releases did not raise the limit
    assert lim.retry_after() == 0.2


# --------------------------------------------------------------------------- fixed window


def test_fixed_window_edges(clock: FakeClock) -> None:
    lim = FixedWindowLimiter(3, 1.0, clock=clock)
    set_time(clock, T0 + 0.999)  # the last instant of window [1000, 1001)
    assert admitted(lim, 5) == 3
    assert lim.retry_after() == pytest.approx(0.001, abs=1e-6)
    set_time(clock, T0 + 1.0)  # the first instant of the next window: a fresh budget
    assert lim.retry_after() == 0.0
    assert admitted(lim, 5) == 3  # 6 calls within 1 ms: the known weakness of fixed windows


def test_fixed_window_is_aligned_not_started_by_the_first_call(clock: FakeClock) -> None:
    set_time(clock, T0 + 0.5)
    lim = FixedWindowLimiter(2, 1.0, clock=clock)
    assert admitted(lim, 3) == 2
    assert lim.retry_after() == pytest.approx(0.5)
    clock.advance(0.5)  # T0 + 1.0, not T0 + 1.5
    assert admitted(lim, 3) == 2


def test_fixed_window_tolerates_decimal_steps(clock: FakeClock) -> None:
    lim = FixedWindowLimiter(1, 0.1, clock=clock)
    assert lim.try_acquire()
    for _ in range(10):  # 0.1 added ten times is not exactly 1.0 in floats
        clock.advance(0.1)
        assert lim.try_acquire()
        assert not lim.try_acquire()


def test_fixed_window_long_idle_starts_a_fresh_window(clock: FakeClock) -> None:
    lim = FixedWindowLimiter(2, 2.0, clock=clock)
    assert admitted(lim, 3) == 2
    clock.advance(3600.0)
    assert admitted(lim, 3) == 2


# --------------------------------------------------------------------------- sliding window


def test_sliding_window_closes_the_fixed_window_edge(clock: FakeClock) -> None:
    lim = SlidingWindowLimiter(4, 1.0, buckets=4, clock=clock)  # sub-windows of 0.25 s
    set_time(clock, T0 + 0.999)  # in sub-window [T0 + 0.75, T0 + 1.0)
    assert admitted(lim, 6) == 4
    set_time(clock, T0 + 1.0)  # a fixed window would admit 4 more here
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.75)  # that sub-window leaves at T0 + 1.75
    set_time(clock, T0 + 1.75 - 0.001)
    assert not lim.try_acquire()
    set_time(clock, T0 + 1.75)
    assert admitted(lim, 6) == 4


def test_sliding_window_precision_across_sub_windows(clock: FakeClock) -> None:
    lim = SlidingWindowLimiter(4, 1.0, buckets=4, clock=clock)
    for k in range(4):  # one call in each sub-window: T0, T0+.25, T0+.5, T0+.75
        set_time(clock, T0 + 0.25 * k)
        assert lim.try_acquire()
    set_time(clock, T0 + 0.99)
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.01)  # the T0 sub-window leaves at T0 + 1.0
    # Each sub-window boundary frees exactly the one call of the sub-window leaving the ring.
    for k in range(4, 8):
        set_time(clock, T0 + 0.25 * k)
        assert lim.try_acquire()
        assert not lim.try_acquire()
        assert lim.retry_after() == pytest.approx(0.25)


def test_sliding_window_counts_several_sub_windows(clock: FakeClock) -> None:
    lim = SlidingWindowLimiter(10, 1.0, buckets=4, clock=clock)
    assert admitted(lim, 3) == 3  # sub-window T0
    set_time(clock, T0 + 0.5)
    assert admitted(lim, 20) == 7  # 3 + 7 = 10 in the last second
    assert lim.retry_after() == pytest.approx(0.5)  # T0's 3 calls leave at T0 + 1.0
    set_time(clock, T0 + 1.0)
    assert admitted(lim, 20) == 3
    set_time(clock, T0 + 1.5)  # the 7 of T0 + 0.5 leave
    assert admitted(lim, 20) == 7


def test_sliding_window_jump_longer_than_the_window_clears_it(clock: FakeClock) -> None:
    lim = SlidingWindowLimiter(3, 1.0, buckets=10, clock=clock)
    assert admitted(lim, 5) == 3
    clock.advance(1234.5)
    assert lim.retry_after() == 0.0
    assert admitted(lim, 5) == 3


def test_sliding_window_sustained_rate(clock: FakeClock) -> None:
    lim = SlidingWindowLimiter(8, 1.0, buckets=8, clock=clock)
    total = 0
    for _ in range(10 * 64):  # 10 s of attempts every 1/64 s
        total += lim.try_acquire()
        clock.advance(1 / 64)
    assert total == 80


# --------------------------------------------------------------------------- token bucket


def test_token_bucket_burst_then_refill_rate(clock: FakeClock) -> None:
    lim = TokenBucketLimiter(10.0, 5, clock=clock)
    assert lim.tokens == 5.0
    assert admitted(lim, 8) == 5  # starts full: the burst passes
    assert lim.tokens == pytest.approx(0.0)
    assert lim.retry_after() == pytest.approx(0.1)
    clock.advance(0.05)
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.05)
    clock.advance(0.05)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    clock.advance(0.3)
    assert admitted(lim, 8) == 3


def test_token_bucket_caps_at_burst_after_idle(clock: FakeClock) -> None:
    lim = TokenBucketLimiter(10.0, 5, clock=clock)
    assert admitted(lim, 5) == 5
    clock.advance(60.0)
    assert lim.tokens == 5.0
    assert admitted(lim, 20) == 5


def test_token_bucket_long_run_rate_is_exact(clock: FakeClock) -> None:
    lim = TokenBucketLimiter(8.0, 5, clock=clock)
    total = 0
    for _ in range(8 * 1024):  # 8 s of attempts every 1/1024 s
        total += lim.try_acquire()
        clock.advance(1 / 1024)
    total += lim.try_acquire()  # at T0 + 8 exactly
    assert total == 5 + 8 * 8


def test_token_bucket_default_burst_is_one_second_of_rate() -> None:
    assert TokenBucketLimiter(2.5).burst == 3
    assert TokenBucketLimiter(100.0).burst == 100
    assert TokenBucketLimiter(0.2).burst == 1


def test_token_bucket_retry_after_lands_on_the_admission(clock: FakeClock) -> None:
    lim = TokenBucketLimiter(3.0, 2, clock=clock)  # interval 1/3: not a binary fraction
    for _ in range(50):
        while lim.try_acquire():
            pass
        wait = lim.retry_after()
        assert wait > 0.0
        clock.advance(wait)
        assert lim.try_acquire()


# --------------------------------------------------------------------------- leaky bucket


def test_leaky_bucket_spaces_calls(clock: FakeClock) -> None:
    lim = LeakyBucketLimiter(4.0, clock=clock)  # one call every 0.25 s
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.25)
    clock.advance(0.125)
    assert not lim.try_acquire()
    assert lim.retry_after() == pytest.approx(0.125)
    clock.advance(0.125)
    assert lim.retry_after() == 0.0
    assert lim.try_acquire()
    clock.advance(60.0)  # idle time buys no burst
    assert admitted(lim, 10) == 1


def test_leaky_bucket_sustained_rate(clock: FakeClock) -> None:
    lim = LeakyBucketLimiter(8.0, clock=clock)
    total = 0
    for _ in range(1024):  # 1 s of attempts every 1/1024 s
        total += lim.try_acquire()
        clock.advance(1 / 1024)
    assert total == 8


def test_leaky_bucket_reserve_queues_up_to_max_wait(clock: FakeClock) -> None:
    lim = LeakyBucketLimiter(4.0, max_wait=0.75, clock=clock)
    assert [lim.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert lim.reserve() is None  # would wait 1.0 s
    assert lim.retry_after() == pytest.approx(1.0)  # the refusal booked nothing
    assert not lim.try_acquire()  # the queue ahead has the slots
    clock.advance(0.25)
    assert lim.reserve() == pytest.approx(0.75)
    assert lim.reserve() is None


def test_leaky_bucket_reserve_without_max_wait_is_try_acquire(clock: FakeClock) -> None:
    lim = LeakyBucketLimiter(2.0, clock=clock)
    assert lim.max_wait == 0.0
    assert lim.reserve() == 0.0
    assert lim.reserve() is None
    clock.advance(0.5)
    assert lim.reserve() == 0.0


def test_leaky_bucket_tolerates_decimal_steps(clock: FakeClock) -> None:
    lim = LeakyBucketLimiter(10.0, clock=clock)
    for _ in range(30):
        assert lim.try_acquire()
        clock.advance(0.1)


# --------------------------------------------------------------------------- warm-up


def test_warm_up_starts_cold(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    assert lim.cold_rate == 10.0
    assert lim.current_rate == 10.0
    assert admitted(lim, 50) == 10  # a cold bucket holds one second at the cold rate
    assert lim.retry_after() == pytest.approx(0.1)


def saturate(lim: WarmUpLimiter, clock: FakeClock, seconds: float) -> int:
    """Attempt a call every 1/64 s (faster than any rate used here) for ``seconds``."""
    total = 0
    for _ in range(round(seconds * 64)):
        clock.advance(1 / 64)
        total += lim.try_acquire()
    return total


def test_warm_up_rate_rises_linearly_under_sustained_traffic(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    assert lim.try_acquire()
    rates = []
    for _ in range(4):
        saturate(lim, clock, 2.5)
        rates.append(lim.current_rate)
    assert rates == pytest.approx([15.0, 20.0, 25.0, 30.0], abs=1e-6)
    saturate(lim, clock, 5.0)
    assert lim.current_rate == 30.0  # stays at the full rate
    assert saturate(lim, clock, 4.0) == pytest.approx(4 * 30, abs=1)


def test_warm_up_admits_along_the_curve(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    # Over the first 10 s the rate averages (10 + 30) / 2 = 20/s, plus the initial cold burst.
    assert saturate(lim, clock, 10.0) == pytest.approx(10 + 200, abs=2)


def test_warm_up_cools_down_when_idle(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    saturate(lim, clock, 12.0)
    assert lim.current_rate == 30.0
    clock.advance(1.0)  # the bucket refills (one second) ...
    assert lim.current_rate == pytest.approx(30.0, abs=0.1)
    clock.advance(5.0)  # ... then each idle second cools by one
    assert lim.current_rate == pytest.approx(20.0, abs=0.1)
    clock.advance(5.0)
    assert lim.current_rate == 10.0
    assert admitted(lim, 100) == 10  # a cold burst again


def test_warm_up_low_traffic_stays_cold(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    for _ in range(30):  # one call a second: far below half the cold rate
        assert lim.try_acquire()
        clock.advance(1.0)
    assert lim.current_rate == 10.0


def test_warm_up_cold_factor_one_is_a_plain_rate(clock: FakeClock) -> None:
    lim = WarmUpLimiter(8.0, cold_factor=1.0, clock=clock)
    assert lim.current_rate == 8.0
    assert admitted(lim, 20) == 8


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
