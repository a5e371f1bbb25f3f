"""CircuitBreaker, closed: when it opens (failure rate, slow call rate, consecutive failures, never
before the minimum calls) and how its count and time windows evict old outcomes.
"""

from __future__ import annotations

import pytest
from breaker_helpers import CLOSED, HALF_OPEN, OPEN, Transitions, fail, make, succeed

from telemetry.testing import FakeClock

# -- closed state and opening ---------------------------------------------------------------------


def test_starts_closed_and_admits() -> None:
    breaker = make(FakeClock())
    assert breaker.state is CLOSED
    assert breaker.try_acquire()
    assert breaker.admitted_share == 1.0
    assert breaker.failure_rate == 0.0
    assert breaker.slow_call_rate == 0.0
    assert breaker.retry_after() == 0.0
    assert not breaker.ramping
    assert [int(s) for s in (CLOSED, HALF_OPEN, OPEN)] == [0, 1, 2]


def test_no_opening_before_minimum_calls() -> None:
    breaker = make(FakeClock(), minimum_calls=5)
    fail(breaker, 4)
    assert breaker.state is CLOSED
    assert breaker.failure_rate == 1.0
    fail(breaker)
    assert breaker.state is OPEN


def test_opens_when_failure_rate_reaches_threshold() -> None:
    events = Transitions()
    breaker = make(FakeClock(), minimum_calls=5, failure_rate_threshold=0.5, on_transition=events)
    succeed(breaker, 3)
    fail(breaker, 2)
    assert breaker.failure_rate == pytest.approx(0.4)
    assert breaker.state is CLOSED
    fail(breaker)  # 3 of 6
    assert breaker.state is OPEN
    assert events == [(CLOSED, OPEN, "failure_rate")]
    assert not breaker.try_acquire()
    assert breaker.admitted_share == 0.0


def test_threshold_compared_without_float_error() -> None:
    breaker = make(FakeClock(), minimum_calls=10, failure_rate_threshold=0.3)
    succeed(breaker, 7)
    fail(breaker, 3)  # exactly 30%
    assert breaker.state is OPEN


def test_success_reaching_minimum_calls_can_open() -> None:
    breaker = make(FakeClock(), minimum_calls=4, failure_rate_threshold=0.5)
    fail(breaker, 2)
    succeed(breaker)
    assert breaker.state is CLOSED
    succeed(breaker)  # 2 of 4 failed, and the window just reached minimum_calls
    assert breaker.state is OPEN


def test_opens_on_slow_call_rate() -> None:
    events = Transitions()
    breaker = make(
        FakeClock(),
        slow_call_rate_threshold=0.5,
        slow_call_duration=1.0,
        on_transition=events,
    )
    succeed(breaker, 2)
    succeed(breaker, 1, duration=1.0)  # exactly slow_call_duration counts as slow
    assert breaker.slow_call_rate == pytest.approx(1 / 3)
    assert breaker.state is CLOSED
    succeed(breaker, 1, duration=2.5)
    assert breaker.state is OPEN
    assert events == [(CLOSED, OPEN, "slow_call_rate")]


def test_default_slow_threshold_needs_every_call_slow() -> None:
    breaker = make(FakeClock())
    succeed(breaker, 1)
    succeed(breaker, 5, duration=3.0)
    assert breaker.state is CLOSED
    other = make(FakeClock())
    succeed(other, 4, duration=3.0)
    assert other.state is OPEN


def test_slow_failures_count_as_failures_and_slow() -> None:
    breaker = make(FakeClock(), minimum_calls=10)
    fail(breaker, 2, duration=5.0)
    succeed(breaker, 2)
    assert breaker.failure_rate == 0.5
    assert breaker.slow_call_rate == 0.5


def test_consecutive_failures() -> None:
    events = Transitions()
    breaker = make(
        FakeClock(), window_size=100, minimum_calls=100, consecutive_failures=3, on_transition=events
    )
    fail(breaker, 2)
    succeed(breaker)  # breaks the run
    fail(breaker, 2)
    breaker.on_ignored()  # neither way: does not break or extend the run
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN
    assert events == [(CLOSED, OPEN, "consecutive_failures")]


def test_count_window_evicts_oldest_outcome() -> None:
    breaker = make(FakeClock(), window_size=4, minimum_calls=4, failure_rate_threshold=0.75)
    fail(breaker, 2)
    succeed(breaker, 2)
    assert breaker.failure_rate == 0.5
    succeed(breaker)  # evicts the first failure
    assert breaker.failure_rate == 0.25
    succeed(breaker)  # evicts the second
    assert breaker.failure_rate == 0.0
    fail(breaker, 2)  # S S F F
    assert breaker.state is CLOSED
    fail(breaker)  # S F F F
    assert breaker.state is OPEN


def test_minimum_calls_clamped_to_count_window() -> None:
    breaker = make(FakeClock(), window_size=3, minimum_calls=10)
    fail(breaker, 3)
    assert breaker.state is OPEN


def test_time_window_evicts_by_second() -> None:
    clock = FakeClock(1000.0)
    breaker = make(clock, window_type="time", window_size=3, minimum_calls=2, failure_rate_threshold=0.6)
    succeed(breaker)  # second 1000
    clock.advance(2.0)
    fail(breaker)  # second 1002: 1 of 2
    assert breaker.failure_rate == 0.5
    assert breaker.state is CLOSED
    clock.advance(0.999)  # still second 1002: the window is 1000..1002
    assert breaker.failure_rate == 0.5
    clock.advance(0.001)  # second 1003: the success of 1000 has left
    assert breaker.failure_rate == 1.0
    assert breaker.state is CLOSED  # one call, under minimum_calls
    fail(breaker)
    assert breaker.state is OPEN


def test_time_window_expires_completely() -> None:
    clock = FakeClock(1000.0)
    breaker = make(clock, window_type="time", window_size=5, minimum_calls=100)
    fail(breaker, 3)
    succeed(breaker)
    clock.advance(4.5)
    assert breaker.failure_rate == 0.75
    clock.advance(100.0)
    assert breaker.failure_rate == 0.0
    succeed(breaker)
    assert breaker.failure_rate == 0.0


def test_time_window_eviction_alone_can_trip_on_next_success() -> None:
    clock = FakeClock(1000.0)
    breaker = make(
        clock,
        window_type="time",
        window_size=2,
        minimum_calls=3,
        slow_call_rate_threshold=0.5,
    )
    succeed(breaker, 3)
    clock.advance(1.0)
    succeed(breaker, 3, duration=2.0)  # 3 of 6 slow: opens on the third
    assert breaker.state is OPEN
