"""CircuitBreaker's recovery ramp after the probes: admission by share stepping up with time,
closing after the last step (and resetting the backoff), and what reopens it during the ramp.
"""

from __future__ import annotations

from breaker_helpers import (
    CLOSED,
    FAST,
    HALF_OPEN,
    OPEN,
    ScriptedRandom,
    Transitions,
    fail,
    make,
    open_breaker,
    succeed,
)

from telemetry.governance.breaker import CircuitBreaker
from telemetry.testing import FakeClock


def to_ramp(breaker: CircuitBreaker, clock: FakeClock, wait: float = 5.0, probes: int = 3) -> None:
    """From OPEN: wait, let the probes succeed, and check the ramp started."""
    clock.advance(wait)
    succeed(breaker, probes)
    assert breaker.state is HALF_OPEN
    assert breaker.ramping


# -- recovery ramp ------------------------------------------------------------------------------


def test_ramp_admits_by_share_and_steps_up_with_time() -> None:
    clock = FakeClock()
    rng = ScriptedRandom()
    events = Transitions()
    breaker = make(
        clock,
        rng,
        half_open_probes=2,
        ramp_steps=(0.25, 0.5, 1.0),
        ramp_step_duration=2.0,
        on_transition=events,
    )
    open_breaker(breaker)
    to_ramp(breaker, clock, probes=2)
    assert breaker.admitted_share == 0.25

    rng.push(0.1, 0.3, 0.2499, 0.25)
    assert [breaker.try_acquire() for _ in range(4)] == [True, False, True, False]

    clock.advance(1.999)
    assert breaker.admitted_share == 0.25
    clock.advance(0.001)
    assert breaker.admitted_share == 0.5
    rng.push(0.49, 0.5)
    assert [breaker.try_acquire() for _ in range(2)] == [True, False]
    assert rng.draws == 6
    assert breaker.state is HALF_OPEN

    clock.advance(2.0)  # the last step (1.0) is reached: close without a draw
    assert breaker.admitted_share == 1.0
    assert breaker.try_acquire()
    assert rng.draws == 6
    assert breaker.state is CLOSED
    assert not breaker.ramping
    assert breaker.failure_rate == 0.0
    assert events == [
        (CLOSED, OPEN, "failure_rate"),
        (OPEN, HALF_OPEN, "open_wait_elapsed"),
        (HALF_OPEN, CLOSED, "recovered"),
    ]


def test_ramp_success_after_last_step_closes() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0])
    breaker = make(clock, rng, half_open_probes=1, ramp_steps=(0.5, 1.0), ramp_step_duration=1.0)
    open_breaker(breaker)
    to_ramp(breaker, clock, probes=1)
    assert breaker.try_acquire()
    clock.advance(1.0)
    breaker.on_success(FAST)
    assert breaker.state is CLOSED


def test_single_failure_does_not_undo_the_ramp() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0] * 10)
    breaker = make(clock, rng)
    open_breaker(breaker)
    to_ramp(breaker, clock)
    assert breaker.try_acquire()
    breaker.on_failure(FAST)  # 1 failure of 4 calls since half-open
    assert breaker.state is HALF_OPEN
    assert breaker.ramping
    assert breaker.failure_rate == 0.25


def test_failure_rate_breach_during_ramp_reopens_with_doubled_wait() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0] * 10)
    events = Transitions()
    breaker = make(clock, rng, half_open_probes=2, on_transition=events)
    open_breaker(breaker)
    to_ramp(breaker, clock, probes=2)
    clock.advance(2.0)
    assert breaker.admitted_share == 0.25
    fail(breaker)  # 1 of 3
    assert breaker.ramping
    fail(breaker)  # 2 of 4: minimum_calls (4) would allow it, but it is not needed here
    assert breaker.state is OPEN
    assert not breaker.ramping
    assert events[-1] == (HALF_OPEN, OPEN, "failure_rate")
    assert breaker.retry_after() == 10.0
    assert not breaker.try_acquire()


def test_ramp_reopens_without_waiting_for_minimum_calls() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0] * 10)
    breaker = make(clock, rng, minimum_calls=10, half_open_probes=1)
    open_breaker_calls = 10
    fail(breaker, open_breaker_calls)
    assert breaker.state is OPEN
    to_ramp(breaker, clock, probes=1)
    fail(breaker)  # 1 of 2 calls since half-open: a breach although 2 < minimum_calls
    assert breaker.state is OPEN


def test_consecutive_failures_during_ramp_reopen() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0] * 10)
    events = Transitions()
    breaker = make(
        clock,
        rng,
        window_size=100,
        minimum_calls=4,
        failure_rate_threshold=1.0,
        consecutive_failures=4,
        on_transition=events,
    )
    fail(breaker, 4)
    to_ramp(breaker, clock)
    fail(breaker)
    succeed(breaker)
    fail(breaker, 3)
    assert breaker.state is HALF_OPEN
    fail(breaker)
    assert breaker.state is OPEN
    assert events[-1] == (HALF_OPEN, OPEN, "consecutive_failures")


def test_close_at_end_of_ramp_resets_backoff() -> None:
    clock = FakeClock()
    rng = ScriptedRandom([0.0] * 20)
    breaker = make(clock, rng, ramp_steps=(0.5, 1.0), ramp_step_duration=1.0)
    open_breaker(breaker)
    clock.advance(5.0)
    fail(breaker)  # probe fails: wait 10
    assert breaker.retry_after() == 10.0
    to_ramp(breaker, clock, wait=10.0)
    clock.advance(1.0)
    assert breaker.try_acquire()
    assert breaker.state is CLOSED
    open_breaker(breaker)
    assert breaker.retry_after() == 5.0


def test_empty_ramp_closes_after_probes() -> None:
    clock = FakeClock()
    breaker = make(clock, ramp_steps=(), half_open_probes=2)
    open_breaker(breaker)
    clock.advance(5.0)
    succeed(breaker)
    assert breaker.state is HALF_OPEN
    succeed(breaker)
    assert breaker.state is CLOSED
