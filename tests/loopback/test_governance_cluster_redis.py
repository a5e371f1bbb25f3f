"""A cluster limit on Redis, on real loopback servers: two instances (sync and aio) share one
bucket in a real redis-server, so the second instance refuses with RESOURCE_EXHAUSTED what the
even split would have admitted; the mode is a metric; with Redis gone the instances fall back to
their own split."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from helpers import metric_value

from telemetry.testing.redis_server import RedisServer

# One call per 1000 s for the whole service: the first call anywhere takes the only token.
RULES = {"server": {"methods": {"*": {"rate_limit": {"limit": 0.001, "burst": 1, "cluster": True}}}}}


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def unary(target: str) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        try:
            echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="hi"), timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def mode(service: Any, name: str) -> float:
    return metric_value(service.registry, "governance_cluster_limit_mode", pattern="*", mode=name)


def test_two_sync_instances_share_one_bucket_in_redis(
    sync_service: Any, redis_server: RedisServer
) -> None:
    a = sync_service("shop", governance=RULES, redis_url=redis_server.url)
    b = sync_service("shop", governance=RULES, redis_url=redis_server.url)
    assert unary(a.target) == grpc.StatusCode.OK
    assert unary(b.target) == grpc.StatusCode.RESOURCE_EXHAUSTED  # a took the service's token
    assert unary(a.target) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert mode(b, "redis") == 1 and mode(b, "local") == 0


def test_without_redis_each_instance_has_its_own_limit(sync_service: Any) -> None:
    a = sync_service("shop", governance=RULES)
    b = sync_service("shop", governance=RULES)
    assert unary(a.target) == unary(b.target) == grpc.StatusCode.OK
    assert b.registry.get_sample_value(
        "governance_cluster_limit_mode", {"pattern": "*", "mode": "redis"}
    ) is None  # fmt: skip


def test_with_redis_gone_instances_fall_back_to_their_split(
    sync_service: Any, redis_server: RedisServer
) -> None:
    a = sync_service("shop", governance=RULES, redis_url=redis_server.url)
    b = sync_service("shop", governance=RULES, redis_url=redis_server.url)
    redis_server.stop()
    assert unary(a.target) == grpc.StatusCode.OK  # each its own local token now
    assert unary(b.target) == grpc.StatusCode.OK
    assert unary(b.target) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert mode(b, "local") == 1
    assert metric_value(b.registry, "governance_cluster_store_fallbacks_total") == 1


async def test_aio_instances_share_one_bucket_in_redis(
    aio_service: Any, sync_service: Any, redis_server: RedisServer
) -> None:
    a = sync_service("shop", governance=RULES, redis_url=redis_server.url)
    b = await aio_service("shop", governance=RULES, redis_url=redis_server.url)
    assert await asyncio.to_thread(unary, b.target) == grpc.StatusCode.OK
    assert await asyncio.to_thread(unary, a.target) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await asyncio.to_thread(unary, b.target) == grpc.StatusCode.RESOURCE_EXHAUSTED
