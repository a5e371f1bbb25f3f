"""Window rate limiters: at most N calls per window of time (see ``telemetry.governance.ratelimit``).

* :class:`FixedWindowLimiter` -- windows aligned on multiples of their length. Cheapest, but lets 2N
  through around a window edge (N at the end of one window, N at the start of the next).
* :class:`SlidingWindowLimiter` -- fixes that edge by counting the calls of the last ``window``
  seconds over a ring of sub-windows (Sentinel's LeapArray): bounded memory, O(1) amortised,
  sub-window precision.

Both follow the limiters' shared rules (no grpc, injected clock, one short-held lock; arguments
checked by ``telemetry.governance._ratelimit_args``).
"""

from __future__ import annotations

import math
import threading

from telemetry.governance._ratelimit_args import EPS, positive_int, window_length
from telemetry.governance._types import Clock, monotonic

__all__ = ["FixedWindowLimiter", "SlidingWindowLimiter"]

_floor = math.floor
_INF = math.inf


# --------------------------------------------------------------------------- fixed window


class FixedWindowLimiter:
    """At most ``limit`` calls per window; windows are aligned on multiples of ``window`` seconds.

    The hot path is one comparison against the precomputed window end, plus a counter.
    """

    __slots__ = ("_clock", "_count", "_end", "_limit", "_lock", "_window")

    def __init__(self, limit: int, window: float = 1.0, *, clock: Clock = monotonic) -> None:
        self._limit = positive_int("limit", limit)
        self._window = window_length(window)
        self._clock = clock
        self._count = 0
        self._end = -_INF  # the first call opens the first window
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window(self) -> float:
        return self._window

    def _roll(self, now: float) -> None:
        # Called under the lock. _end is stored 1 ns early so the hot path needs no tolerance.
        w = self._window
        k = _floor((now + EPS) / w)
        self._end = (k + 1) * w - EPS
        self._count = 0

    def try_acquire(self) -> bool:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            if now >= self._end:
                self._roll(now)
            if self._count < self._limit:
                self._count += 1
                return True
            return False
        finally:
            lock.release()

    def retry_after(self) -> float:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            if now >= self._end or self._count < self._limit:
                return 0.0
            return max(0.0, self._end - now)
        finally:
            lock.release()

    def release(self) -> None:
        """No-op: a window counts starts, not calls in flight."""

    def __repr__(self) -> str:
        return f"FixedWindowLimiter(limit={self._limit}, window={self._window})"


# --------------------------------------------------------------------------- sliding window


class SlidingWindowLimiter:
    """At most ``limit`` calls in the last ``window`` seconds, at sub-window precision.

    The window is a ring of ``buckets`` sub-windows of ``window / buckets`` seconds each (aligned on
    multiples of that width), with a running total, so memory is bounded and each call is O(1)
    amortised (advancing the ring clears at most ``buckets`` slots). The count covers the current
    sub-window and the ``buckets - 1`` before it, as Sentinel's LeapArray does: a call stops
    counting when its sub-window leaves the ring, between ``window - window/buckets`` and ``window``
    seconds after it was made. More buckets mean a finer edge and a slightly slower slow path.
    """

    __slots__ = (
        "_clock",
        "_counts",
        "_eps_idx",
        "_head",
        "_inv_sub",
        "_limit",
        "_lock",
        "_n",
        "_pos",
        "_total",
        "_window",
    )

    def __init__(
        self, limit: int, window: float = 1.0, *, buckets: int = 10, clock: Clock = monotonic
    ) -> None:
        self._limit = positive_int("limit", limit)
        self._window = window_length(window)
        self._n = positive_int("buckets", buckets)
        self._clock = clock
        self._inv_sub = self._n / self._window  # sub-windows per second
        self._eps_idx = EPS * self._inv_sub
        self._counts = [0] * self._n
        self._total = 0
        self._head = -(2**62)  # absolute index of the current sub-window; far past = empty ring
        self._pos = 0  # self._head % n, kept to avoid a modulo on the hot path
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def window(self) -> float:
        return self._window

    @property
    def buckets(self) -> int:
        return self._n

    def _advance(self, idx: int) -> None:
        # Called under the lock when time moved into a later sub-window: clear the slots between.
        n = self._n
        steps = idx - self._head
        counts = self._counts
        if steps >= n:
            for i in range(n):
                counts[i] = 0
            self._total = 0
            self._pos = idx % n
        else:
            pos = self._pos
            total = self._total
            for _ in range(steps):
                pos += 1
                if pos == n:
                    pos = 0
                total -= counts[pos]
                counts[pos] = 0
            self._pos = pos
            self._total = total
        self._head = idx

    def try_acquire(self) -> bool:
        idx = _floor(self._clock() * self._inv_sub + self._eps_idx)
        lock = self._lock
        lock.acquire()
        try:
            if idx > self._head:
                self._advance(idx)
            # idx < head only when another thread read the clock later and got the lock first:
            # count the call in the current sub-window, which is what a later read would do.
            if self._total < self._limit:
                self._total += 1
                self._counts[self._pos] += 1
                return True
            return False
        finally:
            lock.release()

    def retry_after(self) -> float:
        now = self._clock()
        idx = _floor(now * self._inv_sub + self._eps_idx)
        lock = self._lock
        lock.acquire()
        try:
            if idx > self._head:
                self._advance(idx)
            if self._total < self._limit:
                return 0.0
            # The oldest non-empty sub-window leaves the ring n sub-windows after it started.
            n = self._n
            counts = self._counts
            pos = self._pos
            for age in range(n - 1, -1, -1):
                if counts[(pos - age) % n]:
                    oldest = self._head - age
                    return max(0.0, (oldest + n) / self._inv_sub - now)
            return 0.0  # unreachable: total >= limit > 0 means some slot is non-empty
        finally:
            lock.release()

    def release(self) -> None:
        """No-op: a window counts starts, not calls in flight."""

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self._limit}, window={self._window}, buckets={self._n})"
