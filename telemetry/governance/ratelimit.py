"""Rate limiters: pure decision objects that say whether one call may go now.

The seed notes' limiter chapter lists the classic algorithms and when to use them; each is here as a
small object behind one protocol, :class:`RateLimiter` (``try_acquire`` / ``retry_after`` /
``release``):

* :class:`ConcurrencyLimiter` -- the notes' "counter": +1 when a call starts, -1 when it ends, so at
  most N calls are ever in flight. The notes rate it the strongest of all despite its simplicity.
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

:func:`build_limiter` maps the configuration names in :data:`ALGORITHMS` to these classes.

Rules shared by every class (see ``telemetry.governance._types``): no grpc, no thread, the clock is
injected, one ``threading.Lock`` held only for a few lines of bookkeeping (never while anybody
waits), so they are safe from threads and asyncio alike. The objects never sleep: a caller that wants
to wait (``LeakyBucketLimiter.reserve``) does the sleeping itself, with ``time.sleep`` or
``asyncio.sleep``.

The buckets use the GCRA formulation (one "theoretical arrival time" instead of a token count and a
last-refill time): one comparison and one addition per call, no refill arithmetic. Time comparisons
tolerate 1 ns so that times built by adding decimal steps (0.1 + 0.1 + ...) land on the intended
side of a boundary.

No argument can make a limiter fail open through float arithmetic: NaN and infinities are refused,
and so is a value whose derived quantities would leave the float range (a rate so small that
``1 / rate`` overflows to infinity, which would admit every call; a window so short that its end
would land before its start within the 1 ns tolerance). The governance rules keep every value far
inside these limits (``telemetry.governance.rules``).
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

from telemetry.governance._types import Clock, monotonic

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

_EPS = 1e-9
"""Tolerance of time comparisons (seconds): absorbs float rounding of summed decimal steps."""

_MIN_WINDOW = 1e-6
"""Shortest window (seconds): 1000 times the time tolerance, so a window always ends after it
starts, and ``now / window`` stays finite for any clock."""

_floor = math.floor
_INF = math.inf


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


# --------------------------------------------------------------------------- argument validation


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _positive_float(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (0 < value < _INF):  # also rejects NaN
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return float(value)


def _interval(name: str, rate: float) -> float:
    """``1 / rate``: seconds per call. Refuses a rate so small (sub-normal) that this overflows: an
    infinite interval makes every comparison with it pass, which would admit every call."""
    try:
        interval = 1.0 / rate
    except (OverflowError, ZeroDivisionError):
        interval = _INF
    if not interval < _INF:
        raise ValueError(f"{name} is too small: its inverse overflows, got {rate!r}")
    return interval


def _window(value: float) -> float:
    window = _positive_float("window", value)
    if window < _MIN_WINDOW:
        raise ValueError(f"window must be >= {_MIN_WINDOW} seconds, got {value!r}")
    return window


def _non_negative_float(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (0 <= value < _INF):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


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
        self._max = _positive_int("max_concurrent", max_concurrent)
        self._retry_hint = _non_negative_float("retry_hint", retry_hint)
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


# --------------------------------------------------------------------------- fixed window


class FixedWindowLimiter:
    """At most ``limit`` calls per window; windows are aligned on multiples of ``window`` seconds.

    The hot path is one comparison against the precomputed window end, plus a counter.
    """

    __slots__ = ("_clock", "_count", "_end", "_limit", "_lock", "_window")

    def __init__(self, limit: int, window: float = 1.0, *, clock: Clock = monotonic) -> None:
        self._limit = _positive_int("limit", limit)
        self._window = _window(window)
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
        k = _floor((now + _EPS) / w)
        self._end = (k + 1) * w - _EPS
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
        self._limit = _positive_int("limit", limit)
        self._window = _window(window)
        self._n = _positive_int("buckets", buckets)
        self._clock = clock
        self._inv_sub = self._n / self._window  # sub-windows per second
        self._eps_idx = _EPS * self._inv_sub
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


# --------------------------------------------------------------------------- token bucket


class TokenBucketLimiter:
    """Tokens refill at ``rate`` per second up to ``burst``; each call takes one; starts full.

    ``burst`` defaults to ``max(1, ceil(rate))``: one second's worth. Implemented as GCRA: ``_tat``
    is the time at which the bucket will be full again; a call is admitted when taking a token would
    leave that time at most ``burst / rate`` seconds ahead of now.
    """

    __slots__ = ("_burst", "_clock", "_interval", "_lock", "_rate", "_span", "_tat")

    def __init__(self, rate: float, burst: int | None = None, *, clock: Clock = monotonic) -> None:
        self._rate = _positive_float("rate", rate)
        if burst is None:
            burst = max(1, math.ceil(self._rate))
        self._burst = _positive_int("burst", burst)
        self._clock = clock
        self._interval = _interval("rate", self._rate)  # seconds one token takes to refill
        try:
            span = self._burst * self._interval + _EPS  # a full bucket, in seconds
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
        return wait if wait > _EPS else 0.0

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
        self._rate = _positive_float("rate", rate)
        self._max_wait = _non_negative_float("max_wait", max_wait)
        self._wait_limit = self._max_wait + _EPS
        self._clock = clock
        self._interval = _interval("rate", self._rate)
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
            if tat - now > _EPS:
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
            if wait <= _EPS:
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
        return wait if wait > _EPS else 0.0

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
        self._rate = _positive_float("rate", rate)
        self._warm_up = _positive_float("warm_up", warm_up)
        cold_factor = _positive_float("cold_factor", cold_factor)
        if cold_factor < 1.0:
            raise ValueError(f"cold_factor must be >= 1, got {cold_factor!r}")
        self._cold_factor = cold_factor
        self._cold_rate = self._rate / cold_factor
        _interval("rate", self._rate)
        _interval("rate / cold_factor", self._cold_rate)  # the cold rate must not underflow either
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
        self._span = (interval if interval > 1.0 else 1.0) + _EPS

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
            return wait if wait > _EPS else 0.0
        finally:
            lock.release()

    def release(self) -> None:
        """No-op: tokens are not returned."""

    def __repr__(self) -> str:
        return (
            f"WarmUpLimiter(rate={self._rate}, warm_up={self._warm_up}, cold_factor={self._cold_factor})"
        )


# --------------------------------------------------------------------------- factory


def _whole(limit: float) -> int:
    # Counting algorithms need whole calls. A fractional limit (a cluster-wide limit split across
    # instances: 100 / 3) is rounded down, to at least 1 call; the constructors reject limit <= 0.
    limit = _positive_float("limit", limit)
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
