"""The capacity test on the native stack, short (4 steps of a few seconds against the gateway):
every step is measured from the real Prometheus, the load settings in force before come back, and
the output is the table of steps and one JSON line. (Its figures against an independently measured
capacity are recorded in benchmarks/RESULTS.md, not timed here.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from services.stack import NativeStack
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.live import LOAD_SETTINGS_KEY, read_load_status
from telemetry.panel.capacity import main
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus
from telemetry.testing._poll import poll


@pytest.fixture
def etcd(stack: NativeStack) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(stack.etcd_endpoint,)))
    yield client
    client.delete(LOAD_SETTINGS_KEY)  # the configured rate again for the tests after this one
    client.close()


def test_a_short_capacity_test_measures_every_step_and_restores_the_load(
    stack: NativeStack, etcd: EtcdClient, capsys: pytest.CaptureFixture[str]
) -> None:
    poll(lambda: read_load_status(etcd), lambda s: s is not None, 30, "the load generator's status")
    live = LiveQueries(Prometheus(stack.prometheus_url))
    poll(  # a user runs the test on a stack whose gateway Prometheus already scrapes
        lambda: live.prometheus.query(live.latency("gateway", 0.99, "12s")),
        bool,
        60,
        "the gateway's p99 in Prometheus",
    )
    before = {"rate": 12.0}
    etcd.put(LOAD_SETTINGS_KEY, json.dumps(before))
    args = [
        "--etcd",
        stack.etcd_endpoint,
        "--prometheus",
        stack.prometheus_url,
        "--service",
        "gateway",
        "--start",
        "5",
        "--ceiling",
        "20",
        "--steps",
        "4",
        "--hold",
        "6",
        "--settle",
        "2",
        "--max-seconds",
        "60",
    ]
    started = time.monotonic()
    code = main(args)
    took = time.monotonic() - started
    out = capsys.readouterr().out.strip().splitlines()
    print("\n".join(out))
    print(f"capacity test of 4 steps: {took:.1f} s")
    assert code in (0, 1)  # a recommendation or not: a light load may not show A clearly
    assert out[0].split()[:2] == ["offered/s", "goodput/s"]
    report = json.loads(out[-1])
    steps = report["points"]["steps"]
    assert [s["offered"] for s in steps] == [5, 10, 15, 20]
    for step in steps:
        assert step["goodput"] > 0 and step["p99"] > 0
    kv = etcd.get(LOAD_SETTINGS_KEY)
    assert kv is not None and json.loads(kv.value) == before
    status = poll(
        lambda: read_load_status(etcd),
        lambda s: s is not None and s["offered_rate"] == 12.0,
        5,
        "the load before the test, in force again",
    )
    assert status is not None
    assert took < 60
