"""The window limiters: the fixed window (aligned edges, decimal steps, a long idle) and the sliding
window that closes its edge burst (precision across sub-windows, long jumps, a sustained rate).
"""

from __future__ import annotations

import pytest

from rate_limiters.support import T0, admitted
from telemetry.governance.ratelimit import FixedWindowLimiter, SlidingWindowLimiter
from telemetry.testing.clock import FakeClock


def set_time(clock: FakeClock, t: float) -> None:
    clock.advance(t - clock())


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
