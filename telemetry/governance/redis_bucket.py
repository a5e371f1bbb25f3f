"""The Redis side of exact cluster rate limits (:mod:`telemetry.governance.cluster_limit`).

One Lua script per decision, run with EVALSHA (redis-py's ``Script``: one round trip; EVAL once
if the server lost its script cache), in the manner of go-zero's ``core/limit/tokenlimit.go``.
The script is a GCRA token bucket (the same formulation as the local
:class:`~telemetry.governance.ratelimit.TokenBucketLimiter`): the key holds one number, the
theoretical arrival time in microseconds, read from Redis's own ``TIME`` inside the script, so the
instances' clocks never matter. The key expires when the bucket would be full again (its state
means nothing after that), so an abandoned limit leaves nothing behind.

Why not the ``limits`` library's Redis storage: it offers fixed and moving windows (and an
approximated sliding window), none of them a token bucket with a burst apart from the rate, which
is what a cluster entry is; its moving window keeps one list entry per admitted call. Measured
per decision on loopback in ``benchmarks/cluster_limit.py`` (docs/governance.md has the figures).

redis-py is an optional extra (``pip install grpc-telemetry-toolkit[redis]``), imported only when
a store is built. Its built-in retries are turned off and every socket operation has a short
timeout: a slow or dead Redis costs one call at most the timeout, then the circuit in
:class:`~telemetry.governance.cluster_limit.ClusterStore` keeps calls away from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry.governance.cluster_limit import REDIS, ClusterStore

if TYPE_CHECKING:
    import redis

__all__ = ["GCRA_SCRIPT", "RedisBucketBackend", "redis_cluster_store"]

GCRA_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end -- TIME before a write: Redis < 5
local interval = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- Whatever is stored is checked: another type (WRONGTYPE), text, NaN or a time far ahead (a
-- hostile write, a wall clock stepped back) must not refuse every call for long. A bucket's
-- own state is never beyond now + span, so clamping there changes nothing for it.
local stored = redis.pcall('GET', KEYS[1])
local tat = type(stored) == 'string' and tonumber(stored) or nil
if tat == nil or tat ~= tat or tat < now then tat = now end
if tat > now + span then -- stored as an empty bucket that refills: it expires like one
  tat = now + span
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.max(1, math.ceil(span / 1000)))
end
local new = tat + interval
if new - now > span + 0.5 then
  return {0, math.ceil(new - now - span)}
end
redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000))
return {1, 0}
"""
"""KEYS[1]: the bucket; ARGV: microseconds per token, microseconds a full bucket spans. Returns
{1, 0} (admitted) or {0, microseconds until a token is back}."""

DEFAULT_TIMEOUT = 0.01
"""Seconds for a connect, a read or a write to Redis (a loopback round trip takes ~0.1 ms)."""


class RedisBucketBackend:
    """:class:`~telemetry.governance.cluster_limit.BucketBackend` on a redis-py client."""

    name = REDIS

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(GCRA_SCRIPT)

    def close(self) -> None:
        self.client.close()

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        interval = 1e6 / rate
        reply: Any = self._script(keys=[key], args=[repr(interval), repr(burst * interval)])
        admitted, wait_us = int(reply[0]), int(reply[1])
        return admitted == 1, wait_us / 1e6


def redis_client(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client for ``url`` with ``timeout`` on every socket operation and no retries; it
    connects on first use (building it opens nothing)."""
    try:
        import redis as redis_lib
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:  # the extra is missing
        raise RuntimeError(
            "TELEMETRY_REDIS_URL is set: cluster rate limits on Redis need redis-py "
            "(pip install 'grpc-telemetry-toolkit[redis]')"
        ) from exc
    return redis_lib.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        client_name="telemetry-rl",
    )


def redis_cluster_store(
    url: str,
    *,
    service: str,
    timeout: float = DEFAULT_TIMEOUT,
    backoff: tuple[float, float] = (0.5, 5.0),
    describe: str = "",
) -> ClusterStore:
    """A :class:`ClusterStore` on the Redis at ``url`` for ``service``'s cluster limits.
    ``describe``: where it is, for logs and the status (never the password: pass
    :func:`telemetry.redis_url.redact`'s result)."""
    backend = RedisBucketBackend(redis_client(url, timeout=timeout))
    return ClusterStore(backend, service=service, backoff=backoff, describe=describe)
