"""Issue 20's demo on the native stack: a service made by ``telemetry new`` and started by hand,
pointed at the running stack's etcd and OTLP receiver, registers in etcd, is listed by the
panel's control plane, and, with nothing edited in Prometheus's configuration, its metrics reach
Prometheus (found through the registry by the stack's scrape-targets sidecar) and its spans the
stack's span sink. When it stops it deregisters and leaves the target list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from scaffold_projects import CATALOG, CATALOG_ROOT, tool

from services.stack import NativeStack
from stack.stackhttp import prometheus, request
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.panel.control_plane import ControlPlane
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus
from telemetry.testing import OtlpReceiver, free_port
from telemetry.testing._poll import poll

NAME = "storefront"
GRPC_SERVICE = "acme.shop.v1.Catalog"
METHOD = f"{GRPC_SERVICE}/GetProduct"
CALLS = 5
WITHIN = 45.0
"""Seconds for each step; Prometheus polls the targets and scrapes every 5 s, so about 10 s."""


@pytest.fixture
def etcd(stack: NativeStack) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,)))
    yield client
    client.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    made = subprocess.run(
        [tool("telemetry"), "new", NAME, "--proto", str(CATALOG), "-I", str(CATALOG_ROOT),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return tmp_path / NAME


def registered(etcd: EtcdClient) -> list[dict[str, Any]]:
    return [json.loads(kv.value) for kv in etcd.get_prefix(f"/services/{NAME}/").items]


def series(stack: NativeStack, query: str) -> list[Any]:
    return list(prometheus(stack.prometheus_url, "/api/v1/query", query=query)["result"])


def listed_targets(stack: NativeStack) -> list[str]:
    """What the stack's scrape-targets sidecar serves Prometheus for this service."""
    status, groups = request(stack.scrape_targets_url)
    assert status == 200, groups
    return [t for g in groups if g["labels"]["job"] == NAME for t in g["targets"]]


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    at: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, step: str) -> None:
        self.marks[step] = time.monotonic() - self.at


@pytest.fixture
def service(stack: NativeStack, project: Path, tmp_path: Path) -> Iterator[Started]:
    """The generated project's ``main.py``, as a user starts it, pointed at the stack."""
    port = free_port()
    env = {
        **os.environ,
        # What docs/scaffold.md tells a user to point it at: the stack's etcd and OTLP receiver.
        "ETCD_ENDPOINTS": stack.etcd_endpoint,
        "OTEL_EXPORTER_OTLP_ENDPOINT": str(stack.otlp_endpoint),
        "OTEL_BSP_SCHEDULE_DELAY": "500",
        "STOREFRONT_PORT": str(port),
        "TELEMETRY_METRICS_HOST": "127.0.0.1",
    }
    log = tmp_path / f"{NAME}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(project / "main.py")], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    started = Started(process, port, log)
    try:
        yield started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    print(f"\n{NAME} on the native stack, seconds from its start: "
          + ", ".join(f"{step} {at:.1f}" for step, at in started.marks.items()))  # fmt: skip


def call_unwritten_rpc(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/{METHOD}")
        for _ in range(CALLS):  # not written yet: UNIMPLEMENTED, still counted and traced
            with pytest.raises(grpc.RpcError) as raised:
                call(b"", timeout=5)
            assert isinstance(raised.value, grpc.Call)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def assert_scraped_once(stack: NativeStack, metrics: str) -> None:
    """Its series in Prometheus, under its own job, from the address it registered; the panel's
    per-instance figures join them to the registration; nothing is scraped twice."""
    handled = f'grpc_server_handled_total{{job="{NAME}",grpc_service="{GRPC_SERVICE}"}}'
    found = poll(lambda: series(stack, handled), bool, WITHIN, f"{NAME}'s series in Prometheus")
    assert {s["metric"]["instance"] for s in found} == {metrics}
    assert sum(float(s["value"][1]) for s in found) == CALLS
    assert {s["metric"]["grpc_code"] for s in found} == {"Unimplemented"}  # go-grpc-prometheus's
    assert series(stack, f'up{{job="{NAME}"}} == 1')
    assert series(stack, "count by (instance) (up) > 1") == []
    live = LiveQueries(Prometheus(stack.prometheus_url))
    poll(lambda: live.per_instance(NAME), lambda table: metrics in table, WITHIN,
         "the panel's per-instance figures")  # fmt: skip


def test_a_generated_service_joins_the_running_stack_with_no_config_edited(
    stack: NativeStack, otlp: OtlpReceiver, etcd: EtcdClient, service: Started
) -> None:
    (entry,) = poll(lambda: registered(etcd), bool, WITHIN, f"{NAME} registered in etcd")
    service.mark("registered")
    assert entry["address"] == f"127.0.0.1:{service.port}"
    metrics = entry["metadata"]["metrics"]  # where Prometheus scrapes it: tel.register adds it
    assert metrics.startswith("127.0.0.1:")
    plane = ControlPlane(etcd)  # what the panel reads
    assert NAME in plane.services()
    assert [i.address for i in plane.instances(NAME)] == [f"127.0.0.1:{service.port}"]

    call_unwritten_rpc(service.port)
    spans = otlp.wait_for(lambda spans: sum(s.service_name == NAME and s.name == METHOD
                                            for s in spans) >= CALLS, timeout=WITHIN)  # fmt: skip
    service.mark("traced")
    assert {s.kind for s in spans if s.service_name == NAME and s.name == METHOD} == {"SERVER"}

    poll(lambda: listed_targets(stack), lambda t: t == [metrics], WITHIN, "the target listed")
    service.mark("listed")
    assert_scraped_once(stack, metrics)
    service.mark("scraped")

    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(30) == 0, service.log.read_text()[-3000:]
    assert registered(etcd) == []
    poll(lambda: listed_targets(stack), lambda t: t == [], WITHIN, "the target gone")
    service.mark("gone")
