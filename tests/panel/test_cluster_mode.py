"""The Dynamic thresholds tab says where cluster limits count, read from the instances' statuses
(AppTest, real etcd, a real service with live rules, a real redis-server): Redis while it
answers, the local fallback once it is gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from helpers import make_config, wait_until
from panel_app import run, texts
from panel_app import start as start_panel
from streamlit.testing.v1 import AppTest

import telemetry
from telemetry.control import read_statuses, rules_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.rpc.call import MethodInfo, RpcKind, Side
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.redis_server import RedisServer

SERVICE = "cart"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def cart(
    etcd: EtcdServer, client: EtcdClient, redis_server: RedisServer
) -> Iterator[telemetry.Telemetry]:
    tel = telemetry.Telemetry(
        make_config(SERVICE, redis_url=redis_server.url), governance={}, etcd=etcd.endpoint,
        instance_id="cart-1",
    )  # fmt: skip
    tel.register("127.0.0.1:50060")
    assert tel.live_rules is not None and tel.live_rules.wait_ready(10)
    client.put(rules_key(SERVICE, "cluster"), '{"*": 100}')
    yield tel
    tel.shutdown()
    for prefix in ("/governance/", "/governance-audit/", "/governance-panel/"):
        client.delete_prefix(prefix)
    st.cache_resource.clear()


def mode(client: EtcdClient) -> object:
    status = read_statuses(client, SERVICE).get("cart-1") or {}
    return (status.get("cluster_limits") or {}).get("mode")


def caption(app: AppTest) -> str:
    return next((t for t in texts(app.caption) if t.startswith("Cluster limits counted in")), "")


def test_the_panel_shows_redis_then_the_local_fallback(
    monkeypatch: pytest.MonkeyPatch,
    etcd: EtcdServer,
    client: EtcdClient,
    cart: telemetry.Telemetry,
    redis_server: RedisServer,
) -> None:
    gov = cart.governance
    assert gov is not None
    wait_until(lambda: gov.rules.server.methods.get("*") is not None, 5, "cluster limit applied")
    wait_until(lambda: mode(client) == "redis", 5, "status says redis")
    app = run(start_panel(monkeypatch, etcd.endpoint).selectbox(key="service").set_value(SERVICE))
    assert caption(app) == "Cluster limits counted in: Redis (exact) on 1/1", texts(app.caption)

    redis_server.stop()
    plan = gov.server_plan(gov.snapshot(), MethodInfo("/a.B/C", RpcKind.UNARY, Side.SERVER))
    assert plan is not None and plan.instance("rate_limit").try_acquire()  # decided locally
    wait_until(lambda: mode(client) == "local", 5, "status says local")
    app = run(app)
    assert caption(app) == "Cluster limits counted in: local fallback (Redis unreachable) on 1/1"
