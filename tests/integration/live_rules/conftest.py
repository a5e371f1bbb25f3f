"""Fixtures of the live rules tests: one real etcd shared by every module of the package (each test
uses its own service name, so the tests sharing it do not see each other), a client of it per
test, a fresh service name, and LiveRules watchers started on it and stopped after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from live_rules.support import StartLive, etcd_client
from telemetry.control import LiveRules
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import Governance
from telemetry.testing.etcd_server import EtcdServer


@pytest.fixture(scope="package")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    yield server
    server.close()


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = etcd_client(etcd)
    yield client
    client.close()


@pytest.fixture
def service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


def live_starter(client: EtcdClient, started: list[LiveRules]) -> StartLive:
    def start(governance: Governance, service: str, instance_id: str = "a", **kw: Any) -> LiveRules:
        live = LiveRules(client, governance, service=service, instance_id=instance_id, **kw)
        started.append(live.start())
        assert live.wait_ready(5), "LiveRules did not read etcd"
        return live

    return start


@pytest.fixture
def live(client: EtcdClient) -> Iterator[StartLive]:
    started: list[LiveRules] = []
    yield live_starter(client, started)
    for item in started:
        item.stop()
