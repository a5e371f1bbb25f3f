"""The sliding windows a circuit breaker computes its failure and slow-call rates over.

As in resilience4j, a window is either the last N calls (:class:`CountWindow`) or the last N seconds
(:class:`TimeWindow`); both keep running totals so that adding an outcome is O(1). Used by
``telemetry.governance.breaker`` under its lock: the windows themselves are not thread-safe.
"""

from __future__ import annotations

import math

__all__ = ["FAILURE", "SLOW", "CountWindow", "TimeWindow"]

# Outcome bit flags stored per call in the windows (0: a fast success).
FAILURE = 1
SLOW = 2


class CountWindow:
    """The last ``size`` outcomes in a ring buffer, with running totals (O(1) per call)."""

    __slots__ = ("_outcomes", "_pos", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes = bytearray(size)
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add(self, outcome: int, now: float) -> None:
        pos = self._pos
        if self.calls == self._size:
            evicted = self._outcomes[pos]
            if evicted:  # most outcomes are 0 (fast success): skip the no-op updates
                self.failures -= evicted & FAILURE
                self.slow -= evicted >> 1
        else:
            self.calls += 1
        self._outcomes[pos] = outcome
        if outcome:
            self.failures += outcome & FAILURE
            self.slow += outcome >> 1
        pos += 1
        self._pos = 0 if pos == self._size else pos

    def advance(self, now: float) -> None:
        """Nothing expires by time in a count window."""

    def clear(self, now: float) -> None:
        self._outcomes[:] = bytes(self._size)
        self._pos = self.calls = self.failures = self.slow = 0


class TimeWindow:
    """The last ``size`` seconds as a ring of one-second buckets, with running totals.

    The window is the current (partial) second plus the ``size - 1`` seconds before it.
    """

    __slots__ = (
        "_b_calls",
        "_b_failures",
        "_b_slow",
        "_head",
        "_head_end",
        "_size",
        "calls",
        "failures",
        "slow",
    )

    def __init__(self, size: int, now: float) -> None:
        self._size = size
        self._b_calls = [0] * size
        self._b_failures = [0] * size
        self._b_slow = [0] * size
        self._head = math.floor(now)  # the second the newest bucket stands for
        self._head_end = self._head + 1  # when the newest bucket ends
        self.calls = self.failures = self.slow = 0

    def advance(self, now: float) -> None:
        if now < self._head_end:
            return
        second = math.floor(now)
        head = self._head
        if second <= head:
            return
        size = self._size
        if second - head >= size:
            self.clear(now)
            return
        b_calls, b_failures, b_slow = self._b_calls, self._b_failures, self._b_slow
        for s in range(head + 1, second + 1):
            i = s % size
            self.calls -= b_calls[i]
            self.failures -= b_failures[i]
            self.slow -= b_slow[i]
            b_calls[i] = b_failures[i] = b_slow[i] = 0
        self._head = second
        self._head_end = second + 1

    def add(self, outcome: int, now: float) -> None:
        if now >= self._head_end:
            self.advance(now)
        i = self._head % self._size
        self._b_calls[i] += 1
        self.calls += 1
        if outcome:  # most outcomes are 0 (fast success): skip the no-op updates
            failure = outcome & FAILURE
            slow = outcome >> 1
            self._b_failures[i] += failure
            self._b_slow[i] += slow
            self.failures += failure
            self.slow += slow

    def clear(self, now: float) -> None:
        size = self._size
        self._b_calls = [0] * size
        self._b_failures = [0] * size
        self._b_slow = [0] * size
        self._head = math.floor(now)
        self._head_end = self._head + 1
        self.calls = self.failures = self.slow = 0
