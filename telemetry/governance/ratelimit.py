"""Rate limiters: pure decision objects that say whether one call may go now.

The classic algorithms (Stripe's "Scaling your API with rate limiters", Sentinel's flow control),
each as a small object behind one protocol, :class:`RateLimiter` (``try_acquire`` / ``retry_after`` /
``release``):

* :class:`ConcurrencyLimiter` -- a counter: +1 when a call starts, -1 when it ends, so at most N
  calls are ever in flight. The simplest and the strongest: it bounds work in progress whatever
  each call costs (by Little's law, latency then cannot grow without bound).
* :class:`FixedWindowLimiter` -- at most N calls per aligned window. Cheapest, but lets 2N through
  around a window edge (N at the end of one window, N at the start of the next).
* :class:`SlidingWindowLimiter` -- fixes that edge by counting the calls of the last ``window``
  seconds over a ring of sub-windows (bounded memory, O(1) amortised, sub-window precision).
* :class:`TokenBucketLimiter` -- tokens refill at a steady rate up to ``burst``: bursts pass,
  the long-run rate is capped.
* :class:`LeakyBucketLimiter` -- no bursts at all: calls leave evenly spaced, ``1/rate`` apart, and
  with ``max_wait`` a call may queue (the caller sleeps) for a bounded time instead of being refused.
* :class:`WarmUpLimiter` -- Sentinel's warm-up (Guava's SmoothWarmingUp): after idling, a service
  (cold caches, lazy connections, JIT) is protected by starting at ``rate / cold_factor`` and rising
  to ``rate`` over ``warm_up`` seconds of sustained traffic.

:func:`build_limiter` maps the configuration names in :data:`ALGORITHMS` to these classes. The
window limiters live in ``telemetry.governance.ratelimit_windows``, the buckets (GCRA) in
``telemetry.governance.ratelimit_buckets``, the argument checks and time tolerance they share in
``telemetry.governance._ratelimit_args``; every name is importable from here.

Rules shared by every class (see ``telemetry.governance._types``): no grpc, no thread, the clock is
injected, one ``threading.Lock`` held only for a few lines of bookkeeping (never while anybody
waits), so they are safe from threads and asyncio alike. The objects never sleep: a caller that wants
to wait (``LeakyBucketLimiter.reserve``) does the sleeping itself, with ``time.sleep`` or
``asyncio.sleep``. No argument can make a limiter fail open through float arithmetic (see
``telemetry.governance._ratelimit_args``).
"""

from __future__ import annotations

import threading
from typing import Protocol

from telemetry.governance._ratelimit_args import non_negative_float, positive_float, positive_int
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.ratelimit_buckets import (
    LeakyBucketLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
)
from telemetry.governance.ratelimit_windows import FixedWindowLimiter, SlidingWindowLimiter

__all__ = [
    "ALGORITHMS",
    "ConcurrencyLimiter",
    "FixedWindowLimiter",
    "LeakyBucketLimiter",
    "RateLimiter",
    "SlidingWindowLimiter",
    "TokenBucketLimiter",
    "WarmUpLimiter",
    "build_limiter",
]

ALGORITHMS: tuple[str, ...] = (
    "concurrency",
    "fixed_window",
    "sliding_window",
    "token_bucket",
    "leaky_bucket",
    "warm_up",
)
"""The algorithm names accepted by :func:`build_limiter`."""


class RateLimiter(Protocol):
    """What every limiter offers; all three methods are safe from any thread."""

    def try_acquire(self) -> bool:
        """Admit one call now? Never blocks."""
        ...

    def retry_after(self) -> float:
        """After a refusal: seconds until a call could be admitted (>= 0, a hint for clients)."""
        ...

    def release(self) -> None:
        """The admitted call finished (a no-op except for :class:`ConcurrencyLimiter`)."""
        ...


# --------------------------------------------------------------------------- concurrency


class ConcurrencyLimiter:
    """At most ``max_concurrent`` calls in flight: ``try_acquire`` +1, ``release`` -1.

    Every admitted call must be released exactly once (in a ``finally``). ``retry_after`` cannot
    know when a call will end, so it returns the constant ``retry_hint`` while full. ``clock`` is
    accepted for a uniform constructor and unused.
    """

    __slots__ = ("_in_flight", "_lock", "_max", "_retry_hint")

    def __init__(
        self, max_concurrent: int, *, retry_hint: float = 0.05, clock: Clock = monotonic
    ) -> None:
        self._max = positive_int("max_concurrent", max_concurrent)
        self._retry_hint = non_negative_float("retry_hint", retry_hint)
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def max_concurrent(self) -> int:
        return self._max

    @property
    def in_flight(self) -> int:
        """Calls admitted and not yet released."""
        return self._in_flight

    def try_acquire(self) -> bool:
        lock = self._lock
        lock.acquire()
        try:
            if self._in_flight < self._max:
                self._in_flight += 1
                return True
            return False
        finally:
            lock.release()

    def release(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            # Never below 0: an extra release (a caller bug) must not raise the limit.
            if self._in_flight > 0:
                self._in_flight -= 1
        finally:
            lock.release()

    def retry_after(self) -> float:
        return self._retry_hint if self._in_flight >= self._max else 0.0

    def __repr__(self) -> str:
        return f"ConcurrencyLimiter(max_concurrent={self._max}, in_flight={self._in_flight})"


# --------------------------------------------------------------------------- factory


def _whole(limit: float) -> int:
    # Counting algorithms need whole calls. A fractional limit (a cluster-wide limit split across
    # instances: 100 / 3) is rounded down, to at least 1 call; the constructors reject limit <= 0.
    limit = positive_float("limit", limit)
    return max(1, int(limit))


def build_limiter(
    algorithm: str,
    *,
    limit: float,
    window: float = 1.0,
    burst: int | None = None,
    max_wait: float = 0.0,
    warm_up: float = 10.0,
    cold_factor: float = 3.0,
    clock: Clock = monotonic,
) -> RateLimiter:
    """Build the limiter named ``algorithm`` (one of :data:`ALGORITHMS`).

    ``limit`` is the maximum of calls in flight (``concurrency``), of calls per ``window`` seconds
    (``fixed_window``, ``sliding_window``) or of calls per second (``token_bucket``,
    ``leaky_bucket``, ``warm_up``). The counting algorithms (the first three) take ``limit`` rounded
    down to a whole number, at least 1, so a cluster-wide limit split across instances works.
    Arguments an algorithm does not use are ignored.
    """
    if algorithm == "concurrency":
        return ConcurrencyLimiter(_whole(limit), clock=clock)
    if algorithm == "fixed_window":
        return FixedWindowLimiter(_whole(limit), window, clock=clock)
    if algorithm == "sliding_window":
        return SlidingWindowLimiter(_whole(limit), window, clock=clock)
    if algorithm == "token_bucket":
        return TokenBucketLimiter(limit, burst, clock=clock)
    if algorithm == "leaky_bucket":
        return LeakyBucketLimiter(limit, max_wait=max_wait, clock=clock)
    if algorithm == "warm_up":
        return WarmUpLimiter(limit, warm_up=warm_up, cold_factor=cold_factor, clock=clock)
    raise ValueError(f"unknown rate-limit algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
