"""CircuitBreaker: state machine, windows, backoff, recovery ramp, manual control and concurrency."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.testing import FakeClock

CLOSED = BreakerState.CLOSED
HALF_OPEN = BreakerState.HALF_OPEN
OPEN = BreakerState.OPEN
FORCED_OPEN = BreakerState.FORCED_OPEN
FORCED_CLOSED = BreakerState.FORCED_CLOSED
FAST = 0.01  # a call duration well under slow_call_duration


class ScriptedRandom:
    """A random source returning scripted values; fails the test if it runs out."""

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._values = list(values)
        self.draws = 0

    def push(self, *values: float) -> None:
        self._values.extend(values)

    def __call__(self) -> float:
        if self.draws >= len(self._values):
            raise AssertionError("unexpected random draw")
        self.draws += 1
        return self._values[self.draws - 1]


class Transitions(list[tuple[BreakerState, BreakerState, str]]):
    def __call__(self, old: BreakerState, new: BreakerState, reason: str) -> None:
        self.append((old, new, reason))


def make(clock: FakeClock, random: ScriptedRandom | None = None, **kwargs: Any) -> CircuitBreaker:
    options: dict[str, Any] = {"window_size": 10, "minimum_calls": 4, "open_wait": 5.0}
    options.update(kwargs)
    return CircuitBreaker(clock=clock, random=random or ScriptedRandom(), **options)


def fail(breaker: CircuitBreaker, times: int = 1, duration: float = FAST) -> None:
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.on_failure(duration)


def succeed(breaker: CircuitBreaker, times: int = 1, duration: float = FAST) -> None:
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.on_success(duration)


def open_breaker(breaker: CircuitBreaker) -> None:
    fail(breaker, 4)
    assert breaker.state is OPEN


def to_ramp(breaker: CircuitBreaker, clock: FakeClock, wait: float = 5.0, probes: int = 3) -> None:
    """From OPEN: wait, let the probes succeed, and check the ramp started."""
    clock.advance(wait)
    succeed(breaker, probes)
    assert breaker.state is HALF_OPEN
    assert breaker.ramping


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


# -- callbacks ----------------------------------------------------------------------------------


def test_on_transition_runs_outside_the_lock() -> None:
    clock = FakeClock()
    seen: list[tuple[BreakerState, bool, float]] = []
    breaker: CircuitBreaker

    def listener(old: BreakerState, new: BreakerState, reason: str) -> None:
        # Each of these takes the breaker's (non-reentrant) lock: a deadlock if it were held.
        seen.append((new, breaker.try_acquire(), breaker.retry_after()))
        _ = breaker.failure_rate, breaker.admitted_share

    breaker = make(clock, on_transition=listener)

    def scenario() -> None:
        open_breaker(breaker)  # CLOSED -> OPEN
        clock.advance(5.0)
        assert breaker.try_acquire()  # OPEN -> HALF_OPEN; the listener takes a second probe permit
        breaker.force_open()
        breaker.reset()

    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(timeout=10.0)
    assert not worker.is_alive(), "on_transition was called with the lock held"
    assert seen == [
        (OPEN, False, 5.0),
        (HALF_OPEN, True, 0.0),
        (FORCED_OPEN, False, 0.0),
        (CLOSED, True, 0.0),
    ]


def test_failing_listener_does_not_break_the_breaker(caplog: pytest.LogCaptureFixture) -> None:
    def listener(old: BreakerState, new: BreakerState, reason: str) -> None:
        raise RuntimeError("listener bug")

    breaker = make(FakeClock(), on_transition=listener)
    with caplog.at_level(logging.ERROR, logger="telemetry.governance.breaker"):
        open_breaker(breaker)
    assert breaker.state is OPEN
    assert "on_transition" in caplog.text


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("window_type", "sliding"),
        ("window_size", 0),
        ("window_size", 2.5),
        ("window_size", True),
        ("minimum_calls", 0),
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 1.5),
        ("failure_rate_threshold", float("nan")),
        ("slow_call_rate_threshold", 0.0),
        ("slow_call_duration", 0.0),
        ("slow_call_duration", float("inf")),
        ("consecutive_failures", -1),
        ("open_wait", 0.0),
        ("open_wait", -1.0),
        ("max_open_wait", 1.0),
        ("backoff_multiplier", 0.5),
        ("half_open_probes", 0),
        ("ramp_steps", (0.5, 0.25, 1.0)),
        ("ramp_steps", (0.0, 1.0)),
        ("ramp_steps", (0.5, 0.9)),
        ("ramp_steps", (0.5, 0.5, 1.0)),
        ("ramp_step_duration", 0.0),
        ("on_transition", "not callable"),
    ],
)
def test_invalid_arguments_are_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        CircuitBreaker(**{name: value})


# -- concurrency --------------------------------------------------------------------------------


def test_calls_through_one_breaker_run_concurrently() -> None:
    threads, rounds = 8, 25
    breaker = CircuitBreaker(window_size=1000, minimum_calls=1000)
    # Every thread must be inside the protected call at once for the barrier to open: any
    # serialisation of calls by the breaker would break it (BrokenBarrierError after the timeout).
    inside = threading.Barrier(threads, timeout=10.0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(rounds):
                assert breaker.try_acquire()
                inside.wait()  # the "protected call"
                breaker.on_success(0.001)
        except BaseException as exc:
            errors.append(exc)
            inside.abort()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30.0)
    assert not errors
    assert breaker.state is CLOSED
    assert breaker.failure_rate == 0.0


def test_concurrent_failures_count_exactly() -> None:
    threads, per_thread = 8, 500
    breaker = CircuitBreaker(window_size=threads * per_thread, minimum_calls=threads * per_thread)
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            assert breaker.try_acquire()
            if index % 2 and i % 2:
                breaker.on_failure(0.001)
            else:
                breaker.on_success(0.001)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # Half the threads fail every other call: exactly 1/4 of all calls, none lost to a race.
    assert breaker.failure_rate == 0.25
    assert breaker.state is CLOSED
