"""Bucket rate limiters: a steady rate of calls per second (see ``telemetry.governance.ratelimit``).

* :class:`TokenBucketLimiter` -- tokens refill at a steady rate up to ``burst``: bursts pass,
  the long-run rate is capped.
* :class:`LeakyBucketLimiter` -- no bursts at all: calls leave evenly spaced, ``1/rate`` apart, and
  with ``max_wait`` a call may queue (the caller sleeps) for a bounded time instead of being refused.
* :class:`WarmUpLimiter` -- Sentinel's warm-up (Guava's SmoothWarmingUp): after idling, a service
  (cold caches, lazy connections, JIT) is protected by starting at ``rate / cold_factor`` and rising
  to ``rate`` over ``warm_up`` seconds of sustained traffic.

The buckets use the GCRA formulation (one "theoretical arrival time" instead of a token count and a
last-refill time): one comparison and one addition per call, no refill arithmetic. They follow the
limiters' shared rules (no grpc, injected clock, one short-held lock, never sleeping; arguments
checked by ``telemetry.governance._ratelimit_args``).
"""

from __future__ import annotations

import math
import threading

from telemetry.governance._ratelimit_args import (
    EPS,
    non_negative_float,
    positive_float,
    positive_int,
    seconds_per_call,
)
from telemetry.governance._types import Clock, monotonic

__all__ = ["LeakyBucketLimiter", "TokenBucketLimiter", "WarmUpLimiter"]

_INF = math.inf


# --------------------------------------------------------------------------- token bucket


class TokenBucketLimiter:
    """Tokens refill at ``rate`` per second up to ``burst``; each call takes one; starts full.

    ``burst`` defaults to ``max(1, ceil(rate))``: one second's worth. Implemented as GCRA: ``_tat``
    is the time at which the bucket will be full again; a call is admitted when taking a token would
    leave that time at most ``burst / rate`` seconds ahead of now.
    """

    __slots__ = ("_burst", "_clock", "_interval", "_lock", "_rate", "_span", "_tat")

    def __init__(self, rate: float, burst: int | None = None, *, clock: Clock = monotonic) -> None:
        self._rate = positive_float("rate", rate)
        if burst is None:
            burst = max(1, math.ceil(self._rate))
        self._burst = positive_int("burst", burst)
        self._clock = clock
        self._interval = seconds_per_call("rate", self._rate)  # seconds one token takes to refill
        try:
            span = self._burst * self._interval + EPS  # a full bucket, in seconds
        except OverflowError:  # an int burst past the float range
            span = _INF
        if not span < _INF:  # an infinite span admits every call
            raise ValueError(f"burst / rate overflows: burst={burst!r}, rate={rate!r}")
        self._span = span
        self._tat = -_INF  # full
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    @property
    def tokens(self) -> float:
        """Tokens in the bucket now (fractional), for metrics and tests."""
        missing = (self._tat - self._clock()) * self._rate
        return float(self._burst) if missing <= 0 else max(0.0, self._burst - missing)

    def try_acquire(self) -> bool:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            tat = self._tat
            # A conditional expression, not max(): a builtin call would cost 80 ns here.
            tat = (tat if tat > now else now) + self._interval
            if tat - now > self._span:
                return False
            self._tat = tat
            return True
        finally:
            lock.release()

    def retry_after(self) -> float:
        now = self._clock()
        # A hint, read without the lock (one float attribute, read atomically).
        # One token is back when _tat - now has shrunk to (burst - 1) intervals.
        wait = self._tat - now - (self._burst - 1) * self._interval
        return wait if wait > EPS else 0.0

    def release(self) -> None:
        """No-op: tokens are not returned."""

    def __repr__(self) -> str:
        return f"TokenBucketLimiter(rate={self._rate}, burst={self._burst})"


# --------------------------------------------------------------------------- leaky bucket


class LeakyBucketLimiter:
    """Smooth pacing: admitted calls are spaced at least ``1/rate`` seconds apart, no burst.

    The leaky bucket "as a meter" in its GCRA form: ``_tat`` (theoretical arrival time) is the
    earliest time the next call may go. ``try_acquire`` admits only a call that can go now.
    ``reserve`` is the "as a queue" form: it books the next free slot and returns how long the
    caller must wait for it (0.0 = go now), or ``None`` without booking anything if that wait would
    exceed ``max_wait`` -- so at most about ``max_wait * rate`` callers are ever queued. The object
    never sleeps; the caller does (``time.sleep`` or ``await asyncio.sleep``), and a caller that
    gives up after reserving simply leaves its slot unused.
    """

    __slots__ = ("_clock", "_interval", "_lock", "_max_wait", "_rate", "_tat", "_wait_limit")

    def __init__(self, rate: float, *, max_wait: float = 0.0, clock: Clock = monotonic) -> None:
        self._rate = positive_float("rate", rate)
        self._max_wait = non_negative_float("max_wait", max_wait)
        self._wait_limit = self._max_wait + EPS
        self._clock = clock
        self._interval = seconds_per_call("rate", self._rate)
        self._tat = -_INF
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def max_wait(self) -> float:
        return self._max_wait

    def try_acquire(self) -> bool:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            tat = self._tat
            if tat - now > EPS:
                return False
            self._tat = (tat if tat > now else now) + self._interval
            return True
        finally:
            lock.release()

    def reserve(self) -> float | None:
        """Book the next slot: seconds to wait before the call goes, or None (nothing booked)."""
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            tat = self._tat
            wait = tat - now
            if wait <= EPS:
                self._tat = (tat if tat > now else now) + self._interval
                return 0.0
            if wait > self._wait_limit:
                return None
            self._tat = tat + self._interval
            return wait
        finally:
            lock.release()

    def retry_after(self) -> float:
        wait = self._tat - self._clock()  # a hint, read without the lock as in the token bucket
        return wait if wait > EPS else 0.0

    def release(self) -> None:
        """No-op: the bucket leaks by itself."""

    def __repr__(self) -> str:
        return f"LeakyBucketLimiter(rate={self._rate}, max_wait={self.max_wait})"


# --------------------------------------------------------------------------- warm-up


def _next_heat(heat: float, busy: float, dt: float, warm_up: float) -> float:
    """Heat after ``dt`` seconds whose first ``busy`` ones the bucket spent refilling.

    Refilling comes first (it starts at the last call), so warm and clamp, then cool and clamp.
    """
    if busy > 0.0:
        busy = busy if busy < dt else dt
        heat += busy
        heat = heat if heat < warm_up else warm_up
        dt -= busy
    heat -= dt
    return heat if heat > 0.0 else 0.0


class WarmUpLimiter:
    """A token bucket whose rate warms up from ``rate / cold_factor`` to ``rate`` (Sentinel warm-up).

    The curve, exactly::

        cold_rate    = rate / cold_factor
        current_rate = cold_rate + (rate - cold_rate) * heat / warm_up      heat in [0, warm_up]

    ``heat`` (seconds) starts at 0 and moves with the bucket's state between two calls (or until a
    read of ``current_rate``): time during which the bucket was refilling (tokens were missing)
    adds to it one for one, time during which it sat full subtracts from it one for one, clamped to
    ``[0, warm_up]``. So:

    * under sustained traffic (the limit is being hit) ``current_rate`` rises linearly from
      ``cold_rate`` to ``rate`` in ``warm_up`` seconds;
    * once traffic stops, the bucket refills (at most one second, see below), then each idle second
      cools by one: ``warm_up`` idle seconds make it fully cold again;
    * steady traffic at ``x`` calls/s keeps the bucket refilling a fraction ``x / current_rate`` of
      the time, so it warms while ``x > current_rate / 2`` and settles where the limit is about
      twice the traffic (within ``[cold_rate, rate]``): headroom grows with the load, as Guava's
      stored permits and Sentinel's warning tokens do.

    The bucket holds one second's worth of calls at the current rate (at least one call) and starts
    full: a cold limiter admits a burst of ``cold_rate`` calls, then ``current_rate`` per second.
    Like the other buckets it is stored in GCRA form, as the time at which it will be full again;
    a change of rate keeps that time (the missing tokens are re-counted at the new rate).
    """

    __slots__ = (
        "_clock",
        "_cold_factor",
        "_cold_rate",
        "_heat",
        "_interval",
        "_last",
        "_lock",
        "_rate",
        "_slope",
        "_span",
        "_tat",
        "_warm_up",
    )

    def __init__(
        self,
        rate: float,
        *,
        warm_up: float = 10.0,
        cold_factor: float = 3.0,
        clock: Clock = monotonic,
    ) -> None:
        self._rate = positive_float("rate", rate)
        self._warm_up = positive_float("warm_up", warm_up)
        cold_factor = positive_float("cold_factor", cold_factor)
        if cold_factor < 1.0:
            raise ValueError(f"cold_factor must be >= 1, got {cold_factor!r}")
        self._cold_factor = cold_factor
        self._cold_rate = self._rate / cold_factor
        seconds_per_call("rate", self._rate)
        # The cold rate must not underflow either.
        seconds_per_call("rate / cold_factor", self._cold_rate)
        self._slope = (self._rate - self._cold_rate) / self._warm_up  # rate gained per heat second
        if not self._slope < _INF:  # inf * 0 heat would be NaN, and a NaN rate admits every call
            raise ValueError(f"warm_up is too short for rate: warm_up={warm_up!r}, rate={rate!r}")
        self._clock = clock
        self._heat = 0.0
        self._last = clock()
        self._tat = -_INF  # full
        self._interval = 0.0
        self._span = 0.0
        self._set_rate(self._cold_rate)
        self._lock = threading.Lock()

    def _set_rate(self, rate: float) -> None:
        interval = 1.0 / rate
        self._interval = interval
        # One second's worth of calls, at least one call; +1 ns of rounding tolerance.
        self._span = (interval if interval > 1.0 else 1.0) + EPS

    def _heat_at(self, now: float) -> float:
        # Heat projected to `now` from the last update (read under the lock or approximately).
        last = self._last
        heat = self._heat
        if now <= last:
            return heat
        return _next_heat(heat, self._tat - last, now - last, self._warm_up)

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def cold_rate(self) -> float:
        return self._cold_rate

    @property
    def warm_up(self) -> float:
        return self._warm_up

    @property
    def cold_factor(self) -> float:
        return self._cold_factor

    @property
    def current_rate(self) -> float:
        """The admitted rate (calls/s) as of now, on the curve described in the class docstring."""
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            return self._cold_rate + self._slope * self._heat_at(now)
        finally:
            lock.release()

    def try_acquire(self) -> bool:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            tat = self._tat
            last = self._last
            if now > last:
                # Inlined _heat_at: this is the hot path.
                heat = old = self._heat
                dt = now - last
                busy = tat - last
                if busy >= dt:  # refilling all along (sustained traffic): warm
                    heat += dt
                    # Conditional expressions, not min()/max(): builtin calls cost 80 ns here.
                    heat = heat if heat < self._warm_up else self._warm_up
                elif busy <= 0.0:  # full all along (idle): cool
                    heat -= dt
                    heat = heat if heat > 0.0 else 0.0
                else:
                    heat = _next_heat(heat, busy, dt, self._warm_up)
                if heat != old:
                    self._heat = heat
                    self._set_rate(self._cold_rate + self._slope * heat)
                self._last = now
            # A conditional expression, not max(): a builtin call would cost 80 ns here.
            tat = (tat if tat > now else now) + self._interval
            if tat - now > self._span:
                return False
            self._tat = tat
            return True
        finally:
            lock.release()

    def retry_after(self) -> float:
        now = self._clock()
        lock = self._lock
        lock.acquire()
        try:
            interval = 1.0 / (self._cold_rate + self._slope * self._heat_at(now))
            span = interval if interval > 1.0 else 1.0
            wait = self._tat + interval - span - now
            return wait if wait > EPS else 0.0
        finally:
            lock.release()

    def release(self) -> None:
        """No-op: tokens are not returned."""

    def __repr__(self) -> str:
        return (
            f"WarmUpLimiter(rate={self._rate}, warm_up={self._warm_up}, cold_factor={self._cold_factor})"
        )
