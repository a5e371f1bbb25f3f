"""KeyedLimiter: one limiter per key, allow-list bypass, LRU bound, the shared "" key."""

from __future__ import annotations

import sys
import threading

import pytest

from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import (
    ConcurrencyLimiter,
    FixedWindowLimiter,
    RateLimiter,
    TokenBucketLimiter,
)
from telemetry.testing.clock import FakeClock


def fixed(clock: FakeClock, limit: int = 2) -> KeyedLimiter:
    return KeyedLimiter(lambda: FixedWindowLimiter(limit, 1.0, clock=clock), max_keys=100)


def admitted(keyed: KeyedLimiter, key: str | None, attempts: int) -> int:
    return sum(keyed.try_acquire(key) for _ in range(attempts))


def test_keys_are_isolated() -> None:
    clock = FakeClock()
    keyed = fixed(clock)
    assert admitted(keyed, "alice", 5) == 2
    assert admitted(keyed, "bob", 5) == 2  # alice's exhaustion does not touch bob
    assert len(keyed) == 2
    assert keyed.retry_after("alice") > 0.0
    clock.advance(1.0)
    assert admitted(keyed, "alice", 5) == 2


def test_factory_called_once_per_key() -> None:
    made: list[RateLimiter] = []

    def factory() -> RateLimiter:
        lim = TokenBucketLimiter(100.0)
        made.append(lim)
        return lim

    keyed = KeyedLimiter(factory)
    for _ in range(3):
        keyed.try_acquire("a")
        keyed.try_acquire("b")
    assert len(made) == 2


def test_allow_list_bypasses_and_tracks_nothing() -> None:
    keyed = KeyedLimiter(lambda: FixedWindowLimiter(1, clock=FakeClock()), allow=["vip", "ops"])
    assert admitted(keyed, "vip", 100) == 100
    assert keyed.retry_after("vip") == 0.0
    keyed.release("vip")  # no-op
    assert len(keyed) == 0
    assert "vip" not in keyed
    assert keyed.allow == frozenset({"vip", "ops"})
    assert admitted(keyed, "user", 3) == 1


def test_empty_and_none_keys_share_one_bucket() -> None:
    keyed = fixed(FakeClock(), limit=3)
    assert keyed.try_acquire(None)
    assert keyed.try_acquire("")
    assert keyed.try_acquire(None)
    assert not keyed.try_acquire("")
    assert len(keyed) == 1 and "" in keyed
    assert keyed.retry_after(None) == keyed.retry_after("") > 0.0


def test_empty_key_can_be_allowed() -> None:
    keyed = KeyedLimiter(lambda: FixedWindowLimiter(1, clock=FakeClock()), allow=[""])
    assert admitted(keyed, None, 10) == 10
    assert admitted(keyed, "", 10) == 10
    assert admitted(keyed, "someone", 10) == 1


def test_lru_bound_evicts_the_least_recently_used_key() -> None:
    clock = FakeClock()
    keyed = KeyedLimiter(lambda: FixedWindowLimiter(1, clock=clock), max_keys=3)
    for key in ("a", "b", "c"):
        assert keyed.try_acquire(key)
    assert not keyed.try_acquire("a")  # refused, but a use: "a" becomes most recent
    assert keyed.try_acquire("d")  # full: "b" is the least recently used
    assert len(keyed) == 3
    assert "b" not in keyed and all(k in keyed for k in "acd")
    assert keyed.try_acquire("b")  # forgotten: a fresh limiter
    assert "c" not in keyed
    assert len(keyed) == 3


def test_lru_bound_holds_under_key_rotation() -> None:
    keyed = KeyedLimiter(lambda: TokenBucketLimiter(1.0), max_keys=50)
    for i in range(10_000):
        keyed.try_acquire(f"attacker-{i}")
    assert len(keyed) == 50


def test_eviction_spares_concurrency_limiters_with_calls_in_flight() -> None:
    keyed = KeyedLimiter(lambda: ConcurrencyLimiter(1), max_keys=2)
    assert keyed.try_acquire("busy")  # stays in flight
    assert keyed.try_acquire("idle")
    keyed.release("idle")
    assert keyed.try_acquire("new")  # "busy" is the LRU but has a call in flight
    assert "busy" in keyed and "idle" not in keyed
    assert not keyed.try_acquire("busy")  # its in-flight count was kept
    keyed.release("busy")
    assert keyed.try_acquire("busy")


def test_eviction_still_bounds_memory_when_every_key_is_busy() -> None:
    keyed = KeyedLimiter(lambda: ConcurrencyLimiter(1), max_keys=2)
    assert keyed.try_acquire("a")
    assert keyed.try_acquire("b")
    assert keyed.try_acquire("c")
    assert len(keyed) == 2
    assert "a" not in keyed  # the oldest went anyway
    keyed.release("a")  # releases into nothing, no error, nothing created
    assert "a" not in keyed


def test_concurrency_per_key_release() -> None:
    keyed = KeyedLimiter(lambda: ConcurrencyLimiter(2))
    assert admitted(keyed, "t1", 5) == 2
    assert keyed.retry_after("t1") == 0.05
    keyed.release("t1")
    assert keyed.retry_after("t1") == 0.0
    assert admitted(keyed, "t1", 5) == 1
    assert admitted(keyed, "t2", 5) == 2


def test_unknown_key_queries_create_nothing() -> None:
    keyed = fixed(FakeClock())
    assert keyed.retry_after("nobody") == 0.0
    keyed.release("nobody")
    assert len(keyed) == 0


def test_exact_counts_from_eight_threads() -> None:
    clock = FakeClock()  # frozen
    keyed = KeyedLimiter(lambda: FixedWindowLimiter(100, clock=clock), allow=["vip"])
    keys = ["k0", "k1", "k2", "k3", "vip"]
    start = threading.Barrier(8)
    counts = [0] * 8

    def hammer(i: int) -> None:
        start.wait()
        counts[i] = sum(keyed.try_acquire(keys[j % 5]) for j in range(i, i + 500))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows: interleave the calls
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    # 4000 attempts, 800 per key: each limited key admits exactly 100, "vip" all 800.
    assert sum(counts) == 4 * 100 + 800
    assert len(keyed) == 4


def test_validation() -> None:
    with pytest.raises(ValueError, match="max_keys must be > 0, got 0"):
        KeyedLimiter(lambda: TokenBucketLimiter(1.0), max_keys=0)
    with pytest.raises(TypeError, match="allow must be an iterable of keys"):
        KeyedLimiter(lambda: TokenBucketLimiter(1.0), allow="vip")
    with pytest.raises(TypeError, match="factory must be callable"):
        KeyedLimiter(TokenBucketLimiter(1.0))  # type: ignore[arg-type]
