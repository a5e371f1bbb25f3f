"""Exact cluster limits' pure logic (telemetry.governance.cluster_limit): the circuit around the
store (no call pays for a dead store during its backoff, one call probes, the backoff doubles to
its cap and resets on recovery), bounded keys, which rules get a shared bucket, and the URL
checks. The store here is a scripted backend; tests/integration/test_cluster_limit_redis.py runs
the same against a real redis-server."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest

from telemetry.config import ConfigError, TelemetryConfig
from telemetry.control.cluster_limits import ClusterLimit, mark_cluster_limits, split_cluster_limits
from telemetry.governance import ClusterLimiter, ClusterStore, Governance, TokenBucketLimiter
from telemetry.governance.cluster_limit import LOCAL, MAX_KEY_BYTES, bucket_key
from telemetry.redis_url import redact, redis_url_problem
from telemetry.rpc.call import MethodInfo, RpcKind, Side
from telemetry.testing import FakeClock


class ScriptedBackend:
    """A bucket store whose answers the test sets: ``down`` makes every take raise."""

    name = "redis"

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int]] = []
        self.down = False
        self.admit = True

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        self.calls.append((key, rate, burst))
        if self.down:
            raise ConnectionError("Connection refused")
        return (True, 0.0) if self.admit else (False, 0.25)


def store_and_limiter(
    backoff: tuple[float, float] = (1.0, 4.0),
) -> tuple[ScriptedBackend, FakeClock, ClusterStore, ClusterLimiter]:
    backend, clock = ScriptedBackend(), FakeClock()
    store = ClusterStore(backend, service="order", backoff=backoff, clock=clock)
    local = TokenBucketLimiter(2, 2, clock=clock)  # the even split: 2/s, burst 2
    return backend, clock, store, store.limiter("*", 6.0, 6, local)


def test_the_store_decides_while_it_answers() -> None:
    backend, _clock, store, limiter = store_and_limiter()
    assert [limiter.try_acquire() for _ in range(5)] == [True] * 5  # not the local 2
    assert backend.calls[0] == ("telemetry:rl:order:*", 6.0, 6)
    backend.admit = False
    assert not limiter.try_acquire()
    assert limiter.retry_after() == 0.25  # the store's hint
    assert store.mode == "redis" and store.decisions == {"redis": 6, LOCAL: 0}


def test_a_dead_store_is_not_asked_again_during_its_backoff() -> None:
    backend, clock, store, limiter = store_and_limiter()
    backend.down = True
    verdicts = [limiter.try_acquire() for _ in range(10)]
    assert verdicts == [True, True] + [False] * 8  # the local split: burst 2
    assert len(backend.calls) == 1  # one failed attempt, then the circuit
    assert store.mode == LOCAL and store.errors == 1 and store.fallbacks == 1
    assert limiter.retry_after() > 0  # the local limiter's hint
    clock.advance(0.99)
    limiter.try_acquire()
    assert len(backend.calls) == 1
    clock.advance(0.02)  # the backoff is over: one call probes, fails, the wait doubles
    limiter.try_acquire()
    assert len(backend.calls) == 2 and store.errors == 2 and store.fallbacks == 1
    clock.advance(1.5)
    limiter.try_acquire()
    assert len(backend.calls) == 2  # 2 s now
    clock.advance(0.6)
    backend.down = False
    assert limiter.try_acquire()
    assert len(backend.calls) == 3 and store.mode == "redis" and store.last_error == ""


def test_the_backoff_doubles_to_its_cap_and_resets_on_recovery() -> None:
    backend, clock, store, limiter = store_and_limiter(backoff=(1.0, 4.0))
    backend.down = True
    attempts: list[float] = []
    while len(attempts) < 6:
        before = len(backend.calls)
        limiter.try_acquire()
        if len(backend.calls) > before:
            attempts.append(clock())
        clock.advance(0.25)
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    backend.down = False
    clock.advance(10)
    assert limiter.try_acquire() and store.mode == "redis"
    backend.down = True
    limiter.try_acquire()
    assert store._next_wait == 2.0  # back to 1 s, doubled once


def test_only_one_call_probes_while_the_others_stay_local() -> None:
    backend, clock, store, limiter = store_and_limiter()
    backend.down = True
    limiter.try_acquire()
    clock.advance(1.1)
    started, release = threading.Event(), threading.Event()

    def slow_take(key: str, rate: float, burst: int) -> tuple[bool, float]:
        started.set()
        release.wait(5)
        return True, 0.0

    backend.take = slow_take  # type: ignore[method-assign]
    probe = threading.Thread(target=limiter.try_acquire)
    probe.start()
    assert started.wait(5)
    backend.take = ScriptedBackend().take  # type: ignore[method-assign]
    for _ in range(20):
        limiter.try_acquire()  # local: the probe is in flight
    assert store.decisions["redis"] == 0
    release.set()
    probe.join(5)
    assert store.mode == "redis" and store.decisions["redis"] == 1


def test_calls_in_flight_when_the_store_fails_count_as_one_failure() -> None:
    # Eight calls inside a round trip when Redis goes: the store is down for the first backoff,
    # not pushed to the cap by the seven that failed after it.
    backend, clock, store, limiter = store_and_limiter(backoff=(1.0, 8.0))
    inside = threading.Barrier(8)
    take = backend.take

    def blip(key: str, rate: float, burst: int) -> tuple[bool, float]:
        inside.wait(5)
        raise ConnectionError("Connection reset by peer")

    backend.take = blip  # type: ignore[method-assign]
    threads = [threading.Thread(target=limiter.try_acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert store.errors == 8 and store.fallbacks == 1 and store.mode == LOCAL
    backend.take = take  # type: ignore[method-assign]
    clock.advance(1.01)  # the first backoff, 1 s, not 2^7 s capped at 8
    assert limiter.try_acquire() and store.mode == "redis"


def test_a_probe_cancelled_midway_does_not_leave_the_store_probing() -> None:
    backend, clock, store, limiter = store_and_limiter()
    backend.down = True
    limiter.try_acquire()  # down for 1 s
    take = backend.take

    def cancelled(key: str, rate: float, burst: int) -> tuple[bool, float]:
        raise KeyboardInterrupt  # a BaseException: not a store failure, but no verdict either

    backend.take = cancelled  # type: ignore[method-assign]
    clock.advance(1.01)
    with pytest.raises(KeyboardInterrupt):
        limiter.try_acquire()  # this call was the probe
    backend.take, backend.down = take, False  # type: ignore[method-assign]
    assert limiter.try_acquire() and store.mode == "redis"  # the next call probes again


def test_listeners_hear_each_change_of_mode() -> None:
    backend, clock, store, limiter = store_and_limiter()
    heard: list[str] = []
    changed = threading.Event()

    def listen(mode: str) -> None:
        heard.append(mode)
        changed.set()

    store.add_listener(listen)
    backend.down = True
    limiter.try_acquire()
    assert changed.wait(5)
    changed.clear()
    backend.down = False
    clock.advance(2)
    limiter.try_acquire()
    assert changed.wait(5)
    assert heard == [LOCAL, "redis"]
    assert store.status() == {"mode": "redis", "store": "", "error": None}


@pytest.mark.parametrize("pattern", ["*", "a.B/*", "x" * 10_000, "é" * 5000, "\ud800" * 300])
def test_keys_are_bounded_and_distinct(pattern: str) -> None:
    key = bucket_key("order", pattern)
    assert len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES
    assert key.startswith("telemetry:rl:order:")
    assert key != bucket_key("order", pattern + "y")


def assembled_governance(store: ClusterStore | None, rate_limit: dict[str, Any] | None = None) -> Any:
    doc: dict[str, Any] = {"server": {"methods": {}}}
    if rate_limit is not None:
        doc["server"]["methods"]["*"] = {"rate_limit": rate_limit}
    mark_cluster_limits(doc, {"*": ClusterLimit(90, 30)})
    split_cluster_limits(doc, 3)
    gov = Governance(doc, cpu=lambda: 0.0, cluster_store=store)
    plan = gov.server_plan(gov.snapshot(), MethodInfo("/a.B/C", RpcKind.UNARY, Side.SERVER))
    assert plan is not None
    return plan.instance("rate_limit")


def test_a_split_cluster_limit_gets_the_whole_in_the_store_and_the_share_locally() -> None:
    store = ClusterStore(ScriptedBackend(), service="order")
    limiter = assembled_governance(store)
    assert isinstance(limiter, ClusterLimiter)
    assert (limiter.rate, limiter.burst) == (90, 30)
    assert isinstance(limiter.local, TokenBucketLimiter)
    assert (limiter.local.rate, limiter.local.burst) == (30, 10)  # today's split, unchanged


def test_without_a_store_the_split_is_exactly_as_before() -> None:
    limiter = assembled_governance(None)
    assert isinstance(limiter, TokenBucketLimiter) and (limiter.rate, limiter.burst) == (30, 10)


def test_window_algorithms_stay_split_even_with_a_store() -> None:
    store = ClusterStore(ScriptedBackend(), service="order")
    limiter = assembled_governance(store, {"algorithm": "sliding_window", "limit": 5})
    assert not isinstance(limiter, ClusterLimiter)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:6379", "scheme must be redis or rediss"),
        ("redis://:secret@h:99999/0", "must be a URL"),
        ("redis://h:6379/zero", "database number"),
        ("redis://h:6379/0?socket_timeout=5", "query options are not accepted"),
        ("redis://:secret@/0", "must name a host"),
    ],
)
def test_bad_urls_are_refused_naming_the_variable_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        TelemetryConfig.from_env({"TELEMETRY_REDIS_URL": url})
    message = str(refused.value)
    assert message.startswith("redis_url (TELEMETRY_REDIS_URL): ") and problem in message
    assert "secret" not in message


@pytest.mark.parametrize(
    "url", ["redis://:se#cret@redis:6379/0", "redis://:se/cret@h:1/0", "redis://u:se?cret@h/0"]
)
def test_a_password_a_url_parser_misreads_is_hidden_too(url: str) -> None:
    # An unencoded #, / or ? makes the parser see a fragment, path or query: the URL is refused,
    # and the message must not show what may be the password.
    with pytest.raises(ConfigError) as refused:
        TelemetryConfig.from_env({"TELEMETRY_REDIS_URL": url})
    assert "cret" not in str(refused.value) and "se" not in redact(url).split("@")[0]


def test_the_url_never_shows_its_password() -> None:
    config = TelemetryConfig.from_env({"TELEMETRY_REDIS_URL": "redis://u:s3cr3t@h:6379/1"})
    assert config.redis_url == "redis://u:s3cr3t@h:6379/1"
    assert "s3cr3t" not in repr(config)
    assert redact("redis://u:s3cr3t@h:6379/1") == "redis://u:***@h:6379/1"
    assert redis_url_problem("rediss://h") is None
    assert TelemetryConfig.from_env({}).redis_url is None
    assert TelemetryConfig.from_env({"TELEMETRY_REDIS_TIMEOUT_MS": "5"}).redis_timeout == 0.005


def test_a_handle_gets_a_store_only_when_a_url_is_configured() -> None:
    from helpers import make_config

    import telemetry

    plain = telemetry.Telemetry(make_config("order"), governance={})
    assert plain.governance is not None and plain.governance.cluster_store is None
    url = "redis://u:s3cr3t@127.0.0.1:1/0"  # nothing listens: building opens no socket
    given = Governance(cpu=lambda: 0.0)
    choices: tuple[Any, ...] = ({}, given)  # rules the handle builds from, or a Governance
    for governance in choices:
        tel = telemetry.Telemetry(make_config("order", redis_url=url), governance=governance)
        assert tel.governance is not None
        store = tel.governance.cluster_store
        assert store is not None and store.service == "order"
        assert store.describe == "redis://u:***@127.0.0.1:1/0"
        tel.shutdown(timeout=1)
    assert given.cluster_store is not None
    assert telemetry.Telemetry(make_config("order", redis_url=url)).governance is None
    plain.shutdown(timeout=1)
