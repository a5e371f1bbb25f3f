"""The bucket limiters: the token bucket (burst then refill, capped after idle, an exact long-run
rate, retry_after landing on the admission) and the leaky bucket (spaced calls, a sustained rate,
reservations queued up to max_wait, decimal steps).
"""

from __future__ import annotations

import pytest

from rate_limiters.support import admitted
from telemetry.governance.ratelimit import LeakyBucketLimiter, TokenBucketLimiter
from telemetry.testing.clock import FakeClock

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
