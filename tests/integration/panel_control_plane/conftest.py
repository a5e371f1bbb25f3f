"""Fixtures of the panel's control plane tests: one real etcd shared by every module of the package
(each test uses its own service names, so the tests sharing it do not see each other), a client
of it and a ControlPlane per test, a fresh service name, and real service handles started on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import make_config
from prometheus_client import CollectorRegistry

import telemetry
from panel_control_plane.support import APPLY_WITHIN, StartInstance
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.panel.control_plane import ControlPlane
from telemetry.testing.etcd_server import EtcdServer
from telemetry.testing.ports import free_port


@pytest.fixture(scope="package")
def etcd() -> Iterator[EtcdServer]:
    server = EtcdServer()
    yield server
    server.close()


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,), timeout=2.0))
    yield client
    client.close()


@pytest.fixture
def plane(client: EtcdClient) -> ControlPlane:
    return ControlPlane(client)


@pytest.fixture
def service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def instance(etcd: EtcdServer) -> Iterator[StartInstance]:
    """Start a real service handle on the module's etcd: ``instance(service, "a", rules)``
    (``governance=None``: no live rules, like an older version)."""
    started: list[telemetry.Telemetry] = []

    def start(
        service: str, instance_id: str, governance: Any = None, *, register: bool = False
    ) -> telemetry.Telemetry:
        tel = telemetry.Telemetry(
            make_config(service), registry=CollectorRegistry(), governance=governance,
            etcd=etcd.endpoint, instance_id=instance_id,
        )  # fmt: skip
        started.append(tel)
        if tel.live_rules is not None:
            assert tel.live_rules.wait_ready(APPLY_WITHIN), "live rules did not read etcd"
        if register:
            tel.register(f"127.0.0.1:{free_port()}")
        return tel

    yield start
    for tel in started:
        tel.shutdown()
