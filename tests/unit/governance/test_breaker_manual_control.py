"""CircuitBreaker under manual control: forced open (rejects until reset), forced closed (admits
and counts, never opens), and reset (clears the window and the backoff).
"""

from __future__ import annotations

from breaker_helpers import (
    CLOSED,
    FAST,
    FORCED_CLOSED,
    FORCED_OPEN,
    OPEN,
    Transitions,
    fail,
    make,
    open_breaker,
)

from telemetry.testing import FakeClock

# -- manual control -----------------------------------------------------------------------------


def test_force_open_rejects_until_reset() -> None:
    clock = FakeClock()
    events = Transitions()
    breaker = make(clock, on_transition=events)
    breaker.force_open()
    assert breaker.state is FORCED_OPEN
    assert not breaker.try_acquire()
    assert breaker.retry_after() == 0.0
    assert breaker.admitted_share == 0.0
    clock.advance(1000.0)
    assert not breaker.try_acquire()
    breaker.on_success(FAST)
    breaker.on_failure(FAST)
    breaker.force_open()  # already forced open: no transition
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.try_acquire()
    assert events == [
        (CLOSED, FORCED_OPEN, "forced_open"),
        (FORCED_OPEN, CLOSED, "reset"),
    ]


def test_force_closed_admits_and_counts_but_never_opens() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=2)
    fail(breaker, 2)
    assert breaker.state is OPEN
    breaker.force_closed()
    assert breaker.try_acquire()
    assert breaker.state is FORCED_CLOSED
    assert breaker.admitted_share == 1.0
    breaker.reset()
    breaker.force_closed()
    fail(breaker, 10)
    assert breaker.state is FORCED_CLOSED
    assert breaker.failure_rate == 1.0
    breaker.force_open()
    assert breaker.state is FORCED_OPEN


def test_reset_clears_window_and_backoff() -> None:
    clock = FakeClock()
    breaker = make(clock)
    open_breaker(breaker)
    clock.advance(5.0)
    fail(breaker)
    assert breaker.retry_after() == 10.0
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.failure_rate == 0.0
    fail(breaker, 3)
    assert breaker.state is CLOSED  # the old failures are gone
    fail(breaker)
    assert breaker.retry_after() == 5.0
