"""CircuitBreaker's on_transition listeners: called outside the breaker's lock, and a failing one
is logged without breaking the breaker.
"""

from __future__ import annotations

import logging
import threading

import pytest
from breaker_helpers import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN, make, open_breaker

from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.testing import FakeClock

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
