"""The mechanisms the governance benchmark times: every limiter and the circuit breaker of
``telemetry.governance`` next to the peer libraries offering the same (``limits``,
``pyrate-limiter``, ``pybreaker``, ``aiolimiter``, the stdlib semaphore), their admitting and
refusing set-ups, and the mechanisms no peer has. ``governance.py`` is the entry point."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol, TypeVar

import aiolimiter
import pybreaker
from _governance_timing import (
    HOUR,
    HUGE,
    KEYS,
    Impl,
    Mechanism,
    _acquire_release,
    _adaptive,
    _aio_acquire,
    _aio_calls,
    _aio_empty,
    _aio_reserve,
    _aio_with,
    _Async,
    _calls,
    _keyed,
    _limits_hit,
    _noop,
    _ours_breaker,
    _pybreaker,
    _pyrate,
    _semaphore,
)
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
