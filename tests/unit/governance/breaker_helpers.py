"""What the CircuitBreaker tests share: the states by their short names, a scripted random source,
a transition recorder, a breaker on a FakeClock (window 10, minimum 4 calls, open wait 5 s), and
steps that fail or succeed calls, or open it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
