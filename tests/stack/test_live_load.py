"""Live load control on the native stack: a rate written through the audited control plane (what
the panel's Load form does) reaches the load generator's offered rate within 2 s (read from its
/metrics, ``loadgen_offered_rate``, and its status key)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from services.stack import NativeStack
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.live import LOAD_SETTINGS_KEY, read_load_status
from telemetry.panel.control_plane import LOAD, LOADGEN, ControlPlane
from telemetry.testing._poll import poll


@pytest.fixture
def etcd(stack: NativeStack) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,)))
    yield client
    client.delete(LOAD_SETTINGS_KEY)  # the configured rate again for the tests after this one
    client.close()


def offered_rate(stack: NativeStack) -> float | None:
    with urllib.request.urlopen(stack.metrics_url("loadgen"), timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("loadgen_offered_rate "):
                return float(line.split()[1])
    return None


def test_a_rate_written_through_the_control_plane_is_offered_within_2s(
    stack: NativeStack, etcd: EtcdClient
) -> None:
    configured = poll(lambda: offered_rate(stack), lambda r: r == 10.0, 30, "the configured rate")
    assert configured == 10.0
    plane = ControlPlane(etcd)
    started = time.monotonic()
    change = plane.set(LOADGEN, LOAD, {"rate": 25.0}, actor="stack-test", reason="live load")
    poll(lambda: offered_rate(stack), lambda r: r == 25.0, 2.0, "offered 25/s within 2 s", interval=0.02)
    took = time.monotonic() - started
    status = poll(
        lambda: read_load_status(etcd),
        lambda s: s is not None and s["revision"] >= change.revision,
        2.0,
        "the load generator's status",
    )
    assert status is not None and status["state"] == "applied" and status["offered_rate"] == 25.0
    [entry] = [kv for kv in etcd.get_prefix("/governance-audit/loadgen/").items
               if json.loads(kv.value)["actor"] == "stack-test"]  # fmt: skip
    assert json.loads(entry.value)["after"] == {"rate": 25.0}
    print(f"\ncontrol plane -> loadgen offered rate: {took * 1000:.0f} ms")
    assert took < 2.0

    etcd.delete(LOAD_SETTINGS_KEY)  # no key: the configured rate again
    poll(lambda: offered_rate(stack), lambda r: r == 10.0, 2.0, "back to the configured rate")
