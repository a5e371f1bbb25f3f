"""Exact cluster limits against a real redis-server (telemetry.testing.RedisServer): three
limiters sharing one bucket admit the whole limit under skewed traffic, the burst is exact, keys
expire and stay bounded, and when Redis dies (or hangs) decisions continue locally without a
per-call cost, then go back to Redis when it answers again. No fixed sleeps: polls with deadlines.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from telemetry.governance import ClusterLimiter, ClusterStore, TokenBucketLimiter, redis_cluster_store
from telemetry.governance.cluster_limit import LOCAL, MAX_KEY_BYTES
from telemetry.governance.cluster_metrics import ClusterLimitCollector
from telemetry.testing.redis_server import RedisServer


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


@pytest.fixture
def live(server: RedisServer) -> RedisServer:
    """The module's server, started again if a test killed it, and emptied."""
    server.start()
    redis.Redis.from_url(server.url).flushall()
    return server


def limiters(
    url: str, rate: float, burst: int, *, instances: int = 3, pattern: str = "*", **store: Any
) -> list[ClusterLimiter]:
    """``instances`` limiters, each with its own store and client (as separate processes have),
    sharing one bucket; the local fallback is today's even split."""
    made = []
    for _ in range(instances):
        cluster_store = redis_cluster_store(url, service="order", **store)
        local = TokenBucketLimiter(rate / instances, max(1, -(-burst // instances)))
        made.append(cluster_store.limiter(pattern, rate, burst, local))
    return made


def skewed(limiters: list[ClusterLimiter], seconds: float) -> tuple[list[int], int, float]:
    """Traffic 80/10/10 across the limiters, as fast as one thread goes, for ``seconds``:
    (admitted per limiter, offered, elapsed)."""
    admitted = [0] * len(limiters)
    offered = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        slot = offered % 10
        index = 0 if slot < 8 else slot - 7
        offered += 1
        if limiters[index].try_acquire():
            admitted[index] += 1
    return admitted, offered, elapsed


def test_three_instances_admit_the_whole_limit_under_skewed_traffic(live: RedisServer) -> None:
    rate, burst = 200.0, 20
    admitted, offered, elapsed = skewed(limiters(live.url, rate, burst), 1.5)
    allowed = burst + rate * elapsed
    assert offered > 2 * allowed  # offered well above the limit
    assert 0.95 * allowed <= sum(admitted) <= 1.05 * allowed, (admitted, allowed)
    # The even split would hold the hot instance to a third of the limit.
    assert admitted[0] > 1.5 * (burst / 3 + rate / 3 * elapsed), admitted


def test_the_burst_is_the_whole_clusters(live: RedisServer) -> None:
    hot, *others = limiters(live.url, 1.0, 50)
    verdicts = [hot.try_acquire() for _ in range(60)] + [o.try_acquire() for o in others]
    assert 50 <= sum(verdicts) <= 51  # the burst, plus at most one token refilled meanwhile
    assert not all(verdicts[-2:])
    assert hot.retry_after() > 0


def test_keys_expire_once_their_bucket_is_full_again(live: RedisServer) -> None:
    (limiter,) = limiters(live.url, 10.0, 10, instances=1, pattern="a.B/*")
    client = redis.Redis.from_url(live.url)
    for _ in range(5):
        assert limiter.try_acquire()
    ttl = client.pttl(limiter.key)
    assert 0 < ttl <= 500  # five tokens at 100 ms each: full again within 0.5 s
    deadline = time.monotonic() + 5
    while client.exists(limiter.key) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.exists(limiter.key)


@pytest.mark.parametrize("pattern", ["x" * 100_000, "pkg.S/" + "é" * 20_000, "a\r\nFLUSHALL\r\n/*"])
def test_hostile_patterns_make_bounded_keys(live: RedisServer, pattern: str) -> None:
    (limiter,) = limiters(live.url, 5.0, 1, instances=1, pattern=pattern)
    assert limiter.try_acquire() and not limiter.try_acquire()
    client = redis.Redis.from_url(live.url)
    keys = client.keys("telemetry:rl:*")
    assert keys == [limiter.key.encode("utf-8", "surrogatepass")]
    assert all(len(k) <= MAX_KEY_BYTES for k in keys)


@pytest.mark.parametrize("stored", ["9e15", "inf", "nan", "junk", "hash"])
def test_a_hostile_or_stale_bucket_state_heals_within_its_span(live: RedisServer, stored: str) -> None:
    # Anyone who can write to Redis (or a wall clock stepped back on its host) may leave a key
    # that says "full for ever": it refuses for at most one burst's worth of time, then admits;
    # a key of another type is overwritten; the store never falls back because of it.
    (limiter,) = limiters(live.url, 10.0, 2, instances=1, pattern="h.S/*")
    client = redis.Redis.from_url(live.url)
    if stored == "hash":
        client.hset(limiter.key, "x", "1")
    else:
        client.set(limiter.key, stored)  # no TTL
    limiter.try_acquire()
    assert 0 < client.pttl(limiter.key) <= 200  # expires like a bucket's own state (2 x 100 ms)
    deadline = time.monotonic() + 5
    while not limiter.try_acquire():
        assert time.monotonic() < deadline, "the bucket never admitted again"
        time.sleep(0.02)
    assert limiter.store.mode == "redis" and limiter.store.errors == 0


def test_when_redis_dies_decisions_go_local_without_asking_it_then_come_back(
    live: RedisServer,
) -> None:
    (limiter,) = limiters(live.url, 1000.0, 1000, instances=1, backoff=(0.3, 0.3))
    store = limiter.store
    assert limiter.try_acquire() and store.mode == "redis"
    live.stop()
    assert limiter.try_acquire()  # refused connection: decided locally, the call goes on
    assert store.mode == LOCAL and store.errors == 1 and store.fallbacks == 1
    started = time.monotonic()
    local_calls = 0
    while store.mode == LOCAL and time.monotonic() - started < 0.2:  # within the backoff
        limiter.try_acquire()
        local_calls += 1
    assert store.errors == 1  # nobody asked Redis during the backoff
    assert local_calls > 200  # local decisions cost microseconds, not a timeout each
    live.start()
    deadline = time.monotonic() + 5
    while store.mode != "redis" and time.monotonic() < deadline:
        limiter.try_acquire()
    assert store.mode == "redis" and store.last_error == ""


def test_a_hung_redis_costs_one_timeout_then_nothing(live: RedisServer) -> None:
    (limiter,) = limiters(live.url, 1000.0, 1000, instances=1, timeout=0.02, backoff=(5.0, 5.0))
    store = limiter.store
    assert limiter.try_acquire()  # connected
    assert live.pid is not None
    os.kill(live.pid, signal.SIGSTOP)  # alive, silent: reads time out
    try:
        started = time.monotonic()
        assert limiter.try_acquire()
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(500):
            limiter.try_acquire()
        rest = time.monotonic() - started
    finally:
        os.kill(live.pid, signal.SIGCONT)
    assert store.errors == 1 and "Timeout" in store.last_error
    assert first < 0.5  # the 20 ms timeout, with room for a loaded machine
    assert rest < 0.5  # 500 decisions without a timeout each (500 x 20 ms would be 10 s)


def collected(store: ClusterStore, limiter: ClusterLimiter) -> dict[tuple[str, ...], float]:
    registry = CollectorRegistry()
    registry.register(ClusterLimitCollector(store, lambda: [("*", limiter), ("x", object())]))
    return {
        (sample.name, *sample.labels.values()): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_metrics_say_where_limits_decide(live: RedisServer) -> None:
    (limiter,) = limiters(live.url, 100.0, 100, instances=1, backoff=(30.0, 30.0))
    store = limiter.store
    limiter.try_acquire()
    metrics = collected(store, limiter)
    assert metrics[("governance_cluster_limit_mode", "*", "redis")] == 1
    assert metrics[("governance_cluster_limit_mode", "*", "local")] == 0
    assert metrics[("governance_cluster_limit_decisions_total", "redis")] == 1
    assert metrics[("governance_cluster_store_errors_total",)] == 0
    live.stop()
    limiter.try_acquire()
    limiter.try_acquire()
    metrics = collected(store, limiter)
    assert metrics[("governance_cluster_limit_mode", "*", "redis")] == 0
    assert metrics[("governance_cluster_limit_mode", "*", "local")] == 1
    assert metrics[("governance_cluster_limit_decisions_total", "local")] == 2
    assert metrics[("governance_cluster_store_errors_total",)] == 1
    assert metrics[("governance_cluster_store_fallbacks_total",)] == 1
    assert not any(key[1:2] == ("x",) for key in metrics)  # only cluster limiters have a mode
