"""The governance benchmark's measurement engine: timed decision loops (each with the bound method
in a local, an empty loop of the same shape to subtract), the implementations and mechanisms they
belong to, the interleaved repeats with the garbage collector paused, and the breaker-scaling run
(N threads calling through ONE breaker). ``governance.py`` is the entry point."""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import aiolimiter
import pybreaker
from pyrate_limiter import Limiter

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import LeakyBucketLimiter

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


# --------------------------------------------------------------------------- implementations, repeats


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
