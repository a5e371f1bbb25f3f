"""CircuitBreaker, open and half-open: the open wait and its capped backoff, results while open
ignored, and the bounded probes of the half-open state (released when ignored, reopening with a
doubled wait when they fail or are slow).
"""

from __future__ import annotations

import pytest
from breaker_helpers import FAST, HALF_OPEN, OPEN, Transitions, fail, make, open_breaker, succeed

from telemetry.testing import FakeClock

# -- open state, backoff ------------------------------------------------------------------------


def test_open_wait_then_half_open() -> None:
    clock = FakeClock()
    events = Transitions()
    breaker = make(clock, on_transition=events)
    open_breaker(breaker)
    assert breaker.retry_after() == 5.0
    clock.advance(3.0)
    assert breaker.retry_after() == pytest.approx(2.0)
    assert not breaker.try_acquire()
    assert breaker.state is OPEN  # transitions are lazy
    clock.advance(2.0)
    assert breaker.retry_after() == 0.0
    assert breaker.try_acquire()
    assert breaker.state is HALF_OPEN
    assert breaker.retry_after() == 0.0
    assert breaker.admitted_share == 0.0  # probing: bounded probes, not a share
    assert events[-1] == (OPEN, HALF_OPEN, "open_wait_elapsed")


def test_results_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = make(clock)
    open_breaker(breaker)
    rate = breaker.failure_rate
    breaker.on_success(FAST)  # a call admitted before the breaker opened
    breaker.on_failure(FAST)
    breaker.on_ignored()
    assert breaker.state is OPEN
    assert breaker.failure_rate == rate


def test_backoff_doubles_on_each_reopen_and_is_capped() -> None:
    clock = FakeClock()
    breaker = make(clock, open_wait=1.0, max_open_wait=5.0, backoff_multiplier=2.0)
    open_breaker(breaker)
    waits = [breaker.retry_after()]
    for _ in range(4):
        clock.advance(waits[-1])
        fail(breaker)  # the probe fails
        assert breaker.state is OPEN
        waits.append(breaker.retry_after())
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_no_backoff_with_multiplier_one() -> None:
    clock = FakeClock()
    breaker = make(clock, open_wait=2.0, backoff_multiplier=1.0)
    open_breaker(breaker)
    clock.advance(2.0)
    fail(breaker)
    assert breaker.retry_after() == 2.0


# -- half-open probing --------------------------------------------------------------------------


def test_half_open_bounds_concurrent_probes() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=3)
    open_breaker(breaker)
    clock.advance(5.0)
    assert [breaker.try_acquire() for _ in range(4)] == [True, True, True, False]
    breaker.on_success(FAST)  # one probe done: its permit is free again
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    assert not breaker.ramping


def test_on_ignored_frees_a_probe_permit() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=2)
    open_breaker(breaker)
    clock.advance(5.0)
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.on_ignored()
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    # Ignored probes are not successes: two more successes are still needed.
    breaker.on_success(FAST)
    assert not breaker.ramping
    breaker.on_success(FAST)
    assert breaker.ramping


def test_probe_failure_reopens_with_doubled_wait() -> None:
    clock = FakeClock()
    events = Transitions()
    breaker = make(clock, on_transition=events)
    open_breaker(breaker)
    clock.advance(5.0)
    succeed(breaker)
    fail(breaker)
    assert breaker.state is OPEN
    assert breaker.retry_after() == 10.0
    assert events[-1] == (HALF_OPEN, OPEN, "probe_failed")


def test_stale_results_without_probe_permit_are_ignored() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=2)
    open_breaker(breaker)
    clock.advance(5.0)
    assert breaker.try_acquire()  # one probe out
    breaker.on_success(FAST)  # the probe
    breaker.on_success(FAST)  # no permit outstanding: from a call admitted while closed
    breaker.on_failure(FAST)  # likewise
    assert breaker.state is HALF_OPEN
    assert not breaker.ramping


def test_slow_probes_reopen() -> None:
    clock = FakeClock()
    events = Transitions()
    breaker = make(clock, half_open_probes=2, slow_call_rate_threshold=0.5, on_transition=events)
    open_breaker(breaker)
    clock.advance(5.0)
    succeed(breaker, 1)
    succeed(breaker, 1, duration=3.0)
    assert breaker.state is OPEN
    assert events[-1] == (HALF_OPEN, OPEN, "slow_call_rate")
    assert breaker.retry_after() == 10.0
