"""Governance decision cost: nanoseconds per decision, this package against its peers, in one run.

Every limiter and the circuit breaker of ``telemetry.governance`` is timed next to the peer libraries
that offer the same mechanism (``limits``, ``pyrate-limiter``, ``pybreaker``, ``aiolimiter``; the
stdlib ``threading.BoundedSemaphore`` for the concurrency limiter, which no peer has):

  fixed window      ours | limits FixedWindowRateLimiter | pyrate-limiter FixedWindow (a log)
  sliding window    ours (ring of sub-windows) | limits MovingWindowRateLimiter (exact log) |
                    limits SlidingWindowCounterRateLimiter (two weighted windows) |
                    pyrate-limiter SlidingWindowLog (exact log, pyrate's default)
  token bucket      ours (GCRA) | pyrate-limiter TokenBucket (GCRA, StateBucket)
  leaky bucket      ours, from a coroutine | aiolimiter AsyncLimiter (await acquire / async with)
  concurrency       ours | threading.BoundedSemaphore (acquire(blocking=False) + release)
  breaker closed    ours try_acquire + call + on_success(timed duration) | pybreaker call(fn)
  breaker open      ours try_acquire refused | pybreaker call raising CircuitBreakerError
  ...and, with no peer, warm-up, a keyed limiter over 10k keys, AdaptiveThrottle, AdaptiveLimiter.

Method: each decision runs in a ``perf_counter_ns`` loop with the bound method in a local; an empty
loop of the same shape, timed right after, is subtracted. Admission rows use limits high enough that
every call is admitted (the same work for everybody); ``*_reject`` rows time the refusal path. Within
a mechanism the implementations take turns (order reversed every repeat) so drift on a shared machine
hits them alike; the figure is the median over the repeats. The garbage collector is paused inside
the timed loops (as ``timeit`` does), which can only flatter the peers that allocate per call.

Breaker scaling: N threads (1, 2, 4, 8) call through ONE breaker a function that sleeps 1 ms (the GIL
is released, as in a real RPC); calls/s for no breaker at all ("bare"), ours and pybreaker, which
holds its lock across the call and so serialises them.

Targets (the issue): ours at least as fast as the fastest peer for each comparable mechanism; for the
scaling, ours at 8 threads keeps >= 80% of bare's calls/s.

Run: ``python benchmarks/governance.py`` (``--quick`` for a smoke run; ``--only a,b`` for some
mechanisms). A table, then one JSON line of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiolimiter
import pybreaker
from _common import emit_json, print_table
from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from pyrate_limiter import Duration, FixedWindow, InMemoryBucket, Limiter, Rate, StateBucket, TokenBucket

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import (
    ConcurrencyLimiter,
    FixedWindowLimiter,
    LeakyBucketLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
    WarmUpLimiter,
)
from telemetry.governance.throttle import AdaptiveThrottle

HUGE = 10**12
"""A limit (calls per window, calls per second) no loop here can reach: every call is admitted."""
HOUR = 3600.0
KEYS = 10_000
THREADS = (1, 2, 4, 8)
SCALING_TARGET = 0.8

Loop = Callable[[int], int]
"""Runs ``n`` decisions; returns the elapsed nanoseconds."""

perf_counter_ns = time.perf_counter_ns
perf_counter = time.perf_counter


def _noop() -> None:
    return None


# --------------------------------------------------------------------------- timed loops


def _calls(fn: Callable[[], object]) -> Loop:
    def loop(n: int) -> int:
        f = fn
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            f()
        return perf_counter_ns() - start

    return loop


def _empty(n: int) -> int:
    it = repeat(None, n)
    start = perf_counter_ns()
    for _ in it:
        pass
    return perf_counter_ns() - start


def _acquire_release(acquire: Callable[[], bool], release: Callable[[], object]) -> Loop:
    def loop(n: int) -> int:
        a, r = acquire, release
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            if a():
                r()
        return perf_counter_ns() - start

    return loop


def _semaphore(sem: threading.BoundedSemaphore, *, release: bool) -> Loop:
    def loop(n: int) -> int:
        a, r = sem.acquire, sem.release
        it = repeat(None, n)
        start = perf_counter_ns()
        if release:
            for _ in it:
                if a(False):
                    r()
        else:
            for _ in it:
                a(False)
        return perf_counter_ns() - start

    return loop


def _limits_hit(limiter: Any, item: Any) -> Loop:
    def loop(n: int) -> int:
        hit, it_, key = limiter.hit, item, "bench"
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            hit(it_, key)
        return perf_counter_ns() - start

    return loop


def _pyrate(limiter: Limiter) -> Loop:
    def loop(n: int) -> int:
        acquire, name = limiter.try_acquire, "bench"
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            acquire(name, blocking=False)
        return perf_counter_ns() - start

    return loop


def _ours_breaker(breaker: CircuitBreaker, fn: Callable[[], object]) -> Loop:
    """What an interceptor does: ask, make the call, time it, report it."""

    def loop(n: int) -> int:
        acquire, on_success, call, clock = breaker.try_acquire, breaker.on_success, fn, perf_counter
        rejected = 0
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            if acquire():
                began = clock()
                call()
                on_success(clock() - began)
            else:
                rejected += 1
        return perf_counter_ns() - start

    return loop


def _pybreaker(breaker: pybreaker.CircuitBreaker, fn: Callable[[], object]) -> Loop:
    def loop(n: int) -> int:
        call, f, error = breaker.call, fn, pybreaker.CircuitBreakerError
        rejected = 0
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            try:
                call(f)
            except error:
                rejected += 1
        return perf_counter_ns() - start

    return loop


def _adaptive(limiter: AdaptiveLimiter) -> Loop:
    def loop(n: int) -> int:
        acquire, on_done, clock = limiter.try_acquire, limiter.on_done, perf_counter
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            if acquire():
                began = clock()
                on_done(clock() - began, True)
        return perf_counter_ns() - start

    return loop


def _keyed(limiter: KeyedLimiter) -> tuple[Loop, Loop]:
    keys = [f"user-{i}" for i in range(KEYS)]
    for key in keys:  # create every key's limiter up front: the loop times lookups, not creation
        limiter.try_acquire(key)

    def sequence(n: int) -> list[str]:
        return (keys * (n // KEYS + 1))[:n]

    def loop(n: int) -> int:
        acquire, seq = limiter.try_acquire, sequence(n)
        start = perf_counter_ns()
        for key in seq:
            acquire(key)
        return perf_counter_ns() - start

    def baseline(n: int) -> int:
        seq = sequence(n)
        start = perf_counter_ns()
        for _ in seq:
            pass
        return perf_counter_ns() - start

    return loop, baseline


class _Async:
    """One event loop for the asyncio rows, so aiolimiter stays bound to a single loop."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def loop(self, body: Callable[[int], Coroutine[Any, Any, int]]) -> Loop:
        def run(n: int) -> int:
            return self.runner.run(body(n))

        return run

    def close(self) -> None:
        self.runner.close()


async def _aio_empty(n: int) -> int:
    return _empty(n)


def _aio_calls(fn: Callable[[], object]) -> Callable[[int], Coroutine[Any, Any, int]]:
    async def body(n: int) -> int:
        return _calls(fn)(n)  # the same loop, run from a coroutine inside the event loop

    return body


def _aio_reserve(limiter: LeakyBucketLimiter) -> Callable[[int], Coroutine[Any, Any, int]]:
    """Ours in aiolimiter's (waiting) form: book a slot, sleep only when there is a wait."""

    async def body(n: int) -> int:
        reserve, sleep = limiter.reserve, asyncio.sleep
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            wait = reserve()
            if wait:
                await sleep(wait)
        return perf_counter_ns() - start

    return body


def _aio_acquire(limiter: aiolimiter.AsyncLimiter) -> Callable[[int], Coroutine[Any, Any, int]]:
    async def body(n: int) -> int:
        acquire = limiter.acquire
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            await acquire()
        return perf_counter_ns() - start

    return body


def _aio_with(limiter: aiolimiter.AsyncLimiter) -> Callable[[int], Coroutine[Any, Any, int]]:
    async def body(n: int) -> int:
        lim = limiter
        it = repeat(None, n)
        start = perf_counter_ns()
        for _ in it:
            async with lim:
                pass
        return perf_counter_ns() - start

    return body


# --------------------------------------------------------------------------- the mechanisms


@dataclass
class Impl:
    key: str
    """Stable name in the JSON line ("ours" is the reference of its mechanism)."""
    label: str
    loop: Loop
    baseline: Loop = _empty
    samples: list[float] = field(default_factory=list)

    @property
    def ns(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Mechanism:
    key: str
    impls: list[Impl]
    note: str = ""
    cleanup: list[Callable[[], object]] = field(default_factory=list)

    @property
    def ours(self) -> Impl:
        return self.impls[0]

    @property
    def peers(self) -> list[Impl]:
        return [i for i in self.impls if not i.key.startswith("ours")]


def _expect(condition: bool, what: str) -> None:
    """Set-up checks (not ``assert``: ``python -O`` would skip the calls inside them)."""
    if not condition:
        raise RuntimeError(f"benchmark set-up: expected {what}")


def _rejecting_limits(strategy: type[Any]) -> tuple[Any, Any]:
    limiter = strategy(MemoryStorage())
    item = RateLimitItemPerHour(1)
    first, second = limiter.hit(item, "bench"), limiter.hit(item, "bench")  # one call an hour
    _expect(first and not second, f"limits {strategy.__name__}: one call admitted, then refusals")
    return limiter, item


def _rejecting_pyrate(bucket: Any) -> Limiter:
    limiter = Limiter(bucket)
    first = limiter.try_acquire("bench", blocking=False)  # one call an hour
    second = limiter.try_acquire("bench", blocking=False)
    _expect(
        first is True and second is False, f"pyrate {type(bucket).__name__}: one call, then refusals"
    )
    return limiter


class _Limiter(Protocol):
    def try_acquire(self) -> bool: ...


_L = TypeVar("_L", bound=_Limiter)


def _held(limiter: _L) -> _L:
    first, second = limiter.try_acquire(), limiter.try_acquire()
    _expect(first and not second, f"{limiter!r}: the first call admitted, the second refused")
    return limiter


def build(aio: _Async) -> list[Mechanism]:  # noqa: PLR0915 (one flat list of set-ups reads best)
    mechanisms: list[Mechanism] = []

    # -- fixed window
    lim_fixed = FixedWindowRateLimiter(MemoryStorage())
    pyrate_fixed = Limiter(InMemoryBucket([Rate(HUGE, Duration.SECOND)], algorithm=FixedWindow()))
    mechanisms.append(
        Mechanism(
            "fixed_window",
            [
                Impl(
                    "ours", "ours FixedWindowLimiter", _calls(FixedWindowLimiter(HUGE, 1.0).try_acquire)
                ),
                Impl(
                    "limits",
                    "limits FixedWindowRateLimiter (MemoryStorage) hit",
                    _limits_hit(lim_fixed, RateLimitItemPerSecond(HUGE)),
                ),
                Impl("pyrate", "pyrate-limiter FixedWindow (InMemoryBucket)", _pyrate(pyrate_fixed)),
            ],
            cleanup=[pyrate_fixed.close],
        )
    )
    lim_fixed_r, lim_fixed_item = _rejecting_limits(FixedWindowRateLimiter)
    pyrate_fixed_r = _rejecting_pyrate(InMemoryBucket([Rate(1, Duration.HOUR)], algorithm=FixedWindow()))
    mechanisms.append(
        Mechanism(
            "fixed_window_reject",
            [
                Impl(
                    "ours",
                    "ours FixedWindowLimiter",
                    _calls(_held(FixedWindowLimiter(1, HOUR)).try_acquire),
                ),
                Impl(
                    "limits",
                    "limits FixedWindowRateLimiter hit",
                    _limits_hit(lim_fixed_r, lim_fixed_item),
                ),
                Impl("pyrate", "pyrate-limiter FixedWindow", _pyrate(pyrate_fixed_r)),
            ],
            cleanup=[pyrate_fixed_r.close],
        )
    )

    # -- sliding window
    lim_moving = MovingWindowRateLimiter(MemoryStorage())
    lim_counter = SlidingWindowCounterRateLimiter(MemoryStorage())
    pyrate_log = Limiter(InMemoryBucket([Rate(HUGE, Duration.SECOND)]))
    mechanisms.append(
        Mechanism(
            "sliding_window",
            [
                Impl(
                    "ours",
                    "ours SlidingWindowLimiter (10 sub-windows)",
                    _calls(SlidingWindowLimiter(HUGE, 1.0).try_acquire),
                ),
                Impl(
                    "limits_moving",
                    "limits MovingWindowRateLimiter (exact log)",
                    _limits_hit(lim_moving, RateLimitItemPerSecond(HUGE)),
                ),
                Impl(
                    "limits_counter",
                    "limits SlidingWindowCounterRateLimiter",
                    _limits_hit(lim_counter, RateLimitItemPerSecond(HUGE)),
                ),
                Impl("pyrate", "pyrate-limiter SlidingWindowLog (InMemoryBucket)", _pyrate(pyrate_log)),
            ],
            note="limits' moving window prepends one entry per call to a list (O(entries in the "
            "window)); with a 1 s window driven flat out its cost depends on the loop's own rate.",
            cleanup=[pyrate_log.close],
        )
    )
    lim_moving_r, lim_moving_item = _rejecting_limits(MovingWindowRateLimiter)
    lim_counter_r, lim_counter_item = _rejecting_limits(SlidingWindowCounterRateLimiter)
    pyrate_log_r = _rejecting_pyrate(InMemoryBucket([Rate(1, Duration.HOUR)]))
    mechanisms.append(
        Mechanism(
            "sliding_window_reject",
            [
                Impl(
                    "ours",
                    "ours SlidingWindowLimiter",
                    _calls(_held(SlidingWindowLimiter(1, HOUR)).try_acquire),
                ),
                Impl(
                    "limits_moving",
                    "limits MovingWindowRateLimiter",
                    _limits_hit(lim_moving_r, lim_moving_item),
                ),
                Impl(
                    "limits_counter",
                    "limits SlidingWindowCounterRateLimiter",
                    _limits_hit(lim_counter_r, lim_counter_item),
                ),
                Impl("pyrate", "pyrate-limiter SlidingWindowLog", _pyrate(pyrate_log_r)),
            ],
            cleanup=[pyrate_log_r.close],
        )
    )

    # -- token bucket
    pyrate_tb = Limiter(StateBucket([Rate(HUGE, Duration.SECOND)], algorithm=TokenBucket()))
    mechanisms.append(
        Mechanism(
            "token_bucket",
            [
                Impl(
                    "ours",
                    "ours TokenBucketLimiter (GCRA)",
                    _calls(TokenBucketLimiter(float(HUGE)).try_acquire),
                ),
                Impl("pyrate", "pyrate-limiter TokenBucket (GCRA, StateBucket)", _pyrate(pyrate_tb)),
            ],
            note="pyrate-limiter 4.5's TokenBucket is GCRA like ours (its default, SlidingWindowLog, is "
            "a log, timed under sliding window); limits has no token bucket.",
            cleanup=[pyrate_tb.close],
        )
    )
    pyrate_tb_r = _rejecting_pyrate(StateBucket([Rate(1, Duration.HOUR)], algorithm=TokenBucket()))
    mechanisms.append(
        Mechanism(
            "token_bucket_reject",
            [
                Impl(
                    "ours",
                    "ours TokenBucketLimiter",
                    _calls(_held(TokenBucketLimiter(1 / HOUR, burst=1)).try_acquire),
                ),
                Impl("pyrate", "pyrate-limiter TokenBucket", _pyrate(pyrate_tb_r)),
            ],
            cleanup=[pyrate_tb_r.close],
        )
    )

    # -- leaky bucket, in an event loop
    aio_acquire = aiolimiter.AsyncLimiter(HUGE, 1.0)
    aio_with = aiolimiter.AsyncLimiter(HUGE, 1.0)
    aio_full = aiolimiter.AsyncLimiter(1, HOUR)

    async def fill() -> None:
        await aio_full.acquire()

    aio.runner.run(fill())
    aio_base = aio.loop(_aio_empty)
    mechanisms.append(
        Mechanism(
            "leaky_bucket",
            [
                Impl(
                    "ours",
                    "ours LeakyBucketLimiter try_acquire (in a coroutine)",
                    aio.loop(_aio_calls(LeakyBucketLimiter(float(HUGE)).try_acquire)),
                    aio_base,
                ),
                Impl(
                    "ours_reserve",
                    "ours LeakyBucketLimiter reserve + sleep if > 0",
                    aio.loop(_aio_reserve(LeakyBucketLimiter(float(HUGE), max_wait=1.0))),
                    aio_base,
                ),
                Impl(
                    "aiolimiter_acquire",
                    "aiolimiter AsyncLimiter await acquire()",
                    aio.loop(_aio_acquire(aio_acquire)),
                    aio_base,
                ),
                Impl(
                    "aiolimiter_with",
                    "aiolimiter AsyncLimiter async with",
                    aio.loop(_aio_with(aio_with)),
                    aio_base,
                ),
            ],
            note="aiolimiter's bucket allows a burst of max_rate, ours none (calls 1/rate apart); "
            "aiolimiter only waits, so its refusal row times has_capacity().",
        )
    )
    mechanisms.append(
        Mechanism(
            "leaky_bucket_reject",
            [
                Impl(
                    "ours",
                    "ours LeakyBucketLimiter try_acquire (in a coroutine)",
                    aio.loop(_aio_calls(_held(LeakyBucketLimiter(1 / HOUR)).try_acquire)),
                    aio_base,
                ),
                Impl(
                    "aiolimiter",
                    "aiolimiter AsyncLimiter has_capacity()",
                    aio.loop(_aio_calls(aio_full.has_capacity)),
                    aio_base,
                ),
            ],
        )
    )

    # -- concurrency
    ours_conc = ConcurrencyLimiter(HUGE)
    mechanisms.append(
        Mechanism(
            "concurrency",
            [
                Impl(
                    "ours",
                    "ours ConcurrencyLimiter try_acquire + release",
                    _acquire_release(ours_conc.try_acquire, ours_conc.release),
                ),
                Impl(
                    "semaphore",
                    "stdlib BoundedSemaphore acquire(False) + release",
                    _semaphore(threading.BoundedSemaphore(HUGE), release=True),
                ),
            ],
            note="no peer library has a concurrency limiter: the stdlib semaphore is the baseline.",
        )
    )
    full_conc = ConcurrencyLimiter(1)
    _expect(full_conc.try_acquire(), "ConcurrencyLimiter(1) admits one call")
    full_sem = threading.BoundedSemaphore(1)
    _expect(full_sem.acquire(blocking=False), "BoundedSemaphore(1) admits one call")
    mechanisms.append(
        Mechanism(
            "concurrency_reject",
            [
                Impl("ours", "ours ConcurrencyLimiter try_acquire", _calls(full_conc.try_acquire)),
                Impl(
                    "semaphore",
                    "stdlib BoundedSemaphore acquire(False)",
                    _semaphore(full_sem, release=False),
                ),
            ],
        )
    )

    # -- circuit breaker
    mechanisms.append(
        Mechanism(
            "breaker_closed",
            [
                Impl(
                    "ours",
                    "ours try_acquire + fn() + on_success(duration)",
                    _ours_breaker(CircuitBreaker(), _noop),
                ),
                Impl(
                    "pybreaker",
                    "pybreaker CircuitBreaker.call(fn)",
                    _pybreaker(pybreaker.CircuitBreaker(), _noop),
                ),
            ],
            note="the protected fn is a no-op in both; ours also reads the clock twice to time the "
            "call (slow-call detection needs it), pybreaker does not time calls.",
        )
    )
    ours_open = CircuitBreaker(minimum_calls=1, open_wait=HOUR, max_open_wait=HOUR)
    _expect(ours_open.try_acquire(), "a closed breaker admits")
    ours_open.on_failure(0.0)
    _expect(ours_open.state is BreakerState.OPEN, "ours opens on one failure (minimum_calls=1)")
    py_open = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=HOUR)

    def fail() -> None:
        raise RuntimeError("down")

    with contextlib.suppress(pybreaker.CircuitBreakerError):
        py_open.call(fail)
    _expect(py_open.current_state == pybreaker.STATE_OPEN, "pybreaker opens on one failure")
    mechanisms.append(
        Mechanism(
            "breaker_open",
            [
                Impl("ours", "ours try_acquire refused", _ours_breaker(ours_open, _noop)),
                Impl("pybreaker", "pybreaker call -> CircuitBreakerError", _pybreaker(py_open, _noop)),
            ],
        )
    )

    # -- no peer: on record
    keyed_loop, keyed_base = _keyed(KeyedLimiter(lambda: TokenBucketLimiter(float(HUGE)), max_keys=KEYS))
    throttle = AdaptiveThrottle()
    throttling = AdaptiveThrottle()  # a backend refusing everything: the throttle rejects locally
    for _ in range(1000):
        if throttling.try_acquire():
            throttling.on_rejected()
    _expect(throttling.reject_probability > 0.9, "a throttle whose backend refuses all to throttle")
    adaptive = AdaptiveLimiter(pressure=lambda: 0.1)
    mechanisms += [
        Mechanism(
            "warm_up",
            [Impl("ours", "ours WarmUpLimiter", _calls(WarmUpLimiter(float(HUGE)).try_acquire))],
        ),
        Mechanism(
            "keyed_10k",
            [Impl("ours", f"ours KeyedLimiter, {KEYS} keys, token buckets", keyed_loop, keyed_base)],
        ),
        Mechanism(
            "adaptive_throttle",
            [
                Impl(
                    "ours",
                    "ours AdaptiveThrottle try_acquire + on_accepted",
                    _acquire_release(throttle.try_acquire, throttle.on_accepted),
                )
            ],
        ),
        Mechanism(
            "adaptive_throttle_reject",
            [
                Impl(
                    "ours",
                    "ours AdaptiveThrottle throttling (+ on_rejected if admitted)",
                    _acquire_release(throttling.try_acquire, throttling.on_rejected),
                )
            ],
            note="the backend refuses every call, so the reject probability is near 1 and each "
            "decision scans the window's buckets (O(buckets), 40 by default).",
        ),
        Mechanism(
            "adaptive_limiter",
            [Impl("ours", "ours AdaptiveLimiter try_acquire + on_done(duration)", _adaptive(adaptive))],
        ),
    ]
    return mechanisms


def measure(mechanism: Mechanism, calls: int, repeats: int) -> None:
    impls = mechanism.impls
    for impl in impls:  # warm: caches, lazily created state, the interpreter's specialisation
        impl.loop(max(calls // 10, 1000))
    for index in range(repeats):
        for impl in impls if index % 2 == 0 else reversed(impls):
            gc.collect()
            gc.disable()
            try:
                elapsed = impl.loop(calls)
                empty = impl.baseline(calls)
            finally:
                gc.enable()
            impl.samples.append(max(elapsed - empty, 0) / calls)


# --------------------------------------------------------------------------- breaker scaling


def _sleep_1ms() -> None:
    time.sleep(0.001)


def calls_per_second(impl: str, threads: int, seconds: float) -> float:
    ours = CircuitBreaker()
    peer = pybreaker.CircuitBreaker()
    counts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        barrier.wait()
        until = deadline[0]
        calls = 0
        if impl == "bare":
            while perf_counter() < until:
                _sleep_1ms()
                calls += 1
        elif impl == "ours":
            acquire, on_success = ours.try_acquire, ours.on_success
            while perf_counter() < until:
                if acquire():
                    began = perf_counter()
                    _sleep_1ms()
                    on_success(perf_counter() - began)
                    calls += 1
        else:
            call = peer.call
            while perf_counter() < until:
                call(_sleep_1ms)
                calls += 1
        counts[index] = calls

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    start = perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for thread in pool:
        thread.join()
    return sum(counts) / (perf_counter() - start)


def scaling(seconds: float, slices: int) -> dict[str, dict[int, float]]:
    impls = ("bare", "ours", "pybreaker")
    samples: dict[str, dict[int, list[float]]] = {i: {t: [] for t in THREADS} for i in impls}
    for index in range(slices):
        for threads in THREADS:
            for impl in impls if index % 2 == 0 else reversed(impls):
                samples[impl][threads].append(calls_per_second(impl, threads, seconds))
    return {i: {t: statistics.median(v) for t, v in by.items()} for i, by in samples.items()}


# --------------------------------------------------------------------------- report


def _fmt_ns(ns: float) -> str:
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def report(
    mechanisms: list[Mechanism], scaled: dict[str, dict[int, float]] | None, calls: int, repeats: int
) -> None:
    rows: list[list[str]] = []
    figures: dict[str, dict[str, float]] = {}
    target_met: dict[str, bool] = {}
    misses: list[str] = []
    for mechanism in mechanisms:
        ours = mechanism.ours.ns
        figures[mechanism.key] = {}
        for index, impl in enumerate(mechanism.impls):
            ratio = "" if index == 0 else f"{impl.ns / ours:.2f}" if ours > 0 else "inf"
            rows.append([mechanism.key if index == 0 else "", impl.label, _fmt_ns(impl.ns), ratio])
            figures[mechanism.key][impl.key] = round(impl.ns, 1)
        if mechanism.peers:
            fastest = min(mechanism.peers, key=lambda i: i.ns)
            met = ours <= fastest.ns
            target_met[mechanism.key] = met
            if not met:
                misses.append(
                    f"{mechanism.key}: ours {ours:.0f} ns vs {fastest.label} {fastest.ns:.0f} ns "
                    f"({ours / fastest.ns:.2f}x slower)"
                )
    print_table(
        f"Decision cost, ns per call (median of {repeats} repeats of {calls:,} calls, empty loop "
        "subtracted).\n'vs ours' = peer / ours: > 1 means ours is faster.",
        ["mechanism", "implementation", "ns/call", "vs ours"],
        rows,
    )
    notes = [f"  {m.key}: {m.note}" for m in mechanisms if m.note]
    if notes:
        print("\nNotes:")
        print("\n".join(notes))

    out: dict[str, Any] = {
        "benchmark": "governance",
        "calls": calls,
        "repeats": repeats,
        "mechanisms": figures,
    }
    if scaled is not None:
        scale_rows = [
            [
                str(t),
                *(f"{scaled[i][t]:,.0f}" for i in scaled),
                f"{scaled['ours'][t] / scaled['pybreaker'][t]:.1f}x",
            ]
            for t in THREADS
        ]
        print_table(
            "Breaker scaling: calls/s through ONE breaker, each call sleeping 1 ms (GIL released).",
            ["threads", *scaled, "ours / pybreaker"],
            scale_rows,
        )
        top = THREADS[-1]
        vs_peer = scaled["ours"][top] / scaled["pybreaker"][top]
        kept = scaled["ours"][top] / scaled["bare"][top]
        ours_gain = scaled["ours"][top] / scaled["ours"][1]
        peer_gain = scaled["pybreaker"][top] / scaled["pybreaker"][1]
        print(
            f"\nAt {top} threads: ours {vs_peer:.1f}x pybreaker; ours keeps {kept:.0%} of bare "
            f"(target >= {SCALING_TARGET:.0%}); from 1 to {top} threads ours scales {ours_gain:.1f}x, "
            f"pybreaker {peer_gain:.1f}x."
        )
        met = kept >= SCALING_TARGET
        target_met["breaker_scaling"] = met
        if not met:
            misses.append(f"breaker_scaling: ours keeps {kept:.0%} of bare at {top} threads")
        out["breaker_scaling"] = {
            i: {str(t): round(v, 1) for t, v in by.items()} for i, by in scaled.items()
        }
    print("\nTargets: " + ("all met" if not misses else "MISSED:\n  " + "\n  ".join(misses)))
    out["target_met"] = target_met
    emit_json(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="repeats per implementation (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one breaker-scaling slice")
    parser.add_argument(
        "--slices", type=int, default=3, help="breaker-scaling slices per point (median)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="20k calls x 3 repeats, short scaling: a smoke run"
    )
    parser.add_argument("--only", default="", help="comma-separated mechanisms (and/or breaker_scaling)")
    args = parser.parse_args()
    calls, repeats, seconds, slices = (
        (20_000, 3, 0.25, 1) if args.quick else (args.calls, args.repeats, args.seconds, args.slices)
    )
    only = {m for m in args.only.split(",") if m}
    aio = _Async()
    try:
        built = mechanisms = build(aio)
        known = {m.key for m in mechanisms} | {"breaker_scaling"}
        if only - known:
            parser.error(
                f"--only: unknown {', '.join(sorted(only - known))}; known: {', '.join(sorted(known))}"
            )
        if only:
            mechanisms = [m for m in mechanisms if m.key in only]
        for mechanism in mechanisms:
            measure(mechanism, calls, repeats)
            print(f"{mechanism.key}: done", flush=True)
        for mechanism in built:
            for cleanup in mechanism.cleanup:
                cleanup()
    finally:
        aio.close()
    scaled = scaling(seconds, slices) if not only or "breaker_scaling" in only else None
    report(mechanisms, scaled, calls, repeats)


if __name__ == "__main__":
    main()
