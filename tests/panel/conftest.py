"""What the panel's tests share: a throwaway etcd per test module, and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.testing.etcd_server import EtcdServer


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="module")
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    etcd_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    yield etcd_client
    etcd_client.close()
