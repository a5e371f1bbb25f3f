"""Where exact cluster limits count is in each instance's status (real etcd, real redis-server):
``cluster_limits.mode`` is ``redis`` while Redis answers, turns ``local`` when it dies and back
when it returns, without a rules change; without a store the status says null."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from helpers import wait_until

from live_rules.support import APPLY_WITHIN, StartLive, put, status
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import Governance, redis_cluster_store
from telemetry.rpc.call import MethodInfo, RpcKind, Side
from telemetry.testing.redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def decide(gov: Governance) -> None:
    plan = gov.server_plan(gov.snapshot(), MethodInfo("/a.B/C", RpcKind.UNARY, Side.SERVER))
    assert plan is not None
    plan.instance("rate_limit").try_acquire()


def mode(client: EtcdClient, service: str) -> Any:
    reported = status(client, service)
    return None if reported is None else (reported.get("cluster_limits") or {}).get("mode")


def test_the_status_tells_where_cluster_limits_count(
    client: EtcdClient, live: StartLive, service: str, redis_server: RedisServer
) -> None:
    store = redis_cluster_store(
        redis_server.url, service=service, backoff=(0.05, 0.05), describe="redis://127.0.0.1"
    )
    gov = Governance(cpu=lambda: 0.0, cluster_store=store)
    live(gov, service)
    put(client, service, "cluster", {"*": 100})
    wait_until(lambda: gov.rules.server.methods.get("*") is not None, APPLY_WITHIN, "limit applied")
    decide(gov)
    wait_until(lambda: mode(client, service) == "redis", APPLY_WITHIN, "mode redis")
    assert (status(client, service) or {})["cluster_limits"]["store"] == "redis://127.0.0.1"
    redis_server.stop()
    decide(gov)
    wait_until(lambda: mode(client, service) == "local", APPLY_WITHIN, "mode local")
    assert "Connection" in (status(client, service) or {})["cluster_limits"]["error"]
    redis_server.start()

    def recovered() -> bool:
        decide(gov)
        return bool(mode(client, service) == "redis")

    wait_until(recovered, 5.0, "mode redis again")


def test_without_a_store_the_status_says_null(client: EtcdClient, live: StartLive, service: str) -> None:
    live(Governance(cpu=lambda: 0.0), service)
    reported = status(client, service)
    assert reported is not None and reported["cluster_limits"] is None
