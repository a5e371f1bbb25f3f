"""``python -m telemetry.panel.capacity`` against a real etcd and the load generator's real watcher
(``LiveLoad`` on a ``LoadPlan``, as ``services.loadgen`` runs it), with a small HTTP stand-in for
Prometheus that answers from the rate the generator is actually running at: the steps reach the
generator, each is measured, the settings in force before come back, and the output is a table,
the three points and one JSON line. (The real Prometheus and shop: tests/stack.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fake_prometheus import fake_prometheus

from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.load.live import LOAD_SETTINGS_KEY, LiveLoad
from telemetry.load.schedule import LoadPlan
from telemetry.load.settings import LoadSettings
from telemetry.panel.capacity import EXIT_REFUSED, main
from telemetry.testing.etcd_server import EtcdServer

CAPACITY = 40.0


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def client(etcd: EtcdServer) -> Iterator[EtcdClient]:
    etcd_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    yield etcd_client
    for prefix in ("/loadgen/", "/governance-audit/"):
        etcd_client.delete_prefix(prefix)
    etcd_client.close()


@pytest.fixture
def plan(client: EtcdClient) -> Iterator[LoadPlan]:
    plan = LoadPlan(LoadSettings(rate=5.0))
    live = LiveLoad(client, plan).start()
    assert live.wait_ready(5)
    yield plan
    live.stop()


@pytest.fixture
def prometheus(plan: LoadPlan) -> Iterator[str]:
    """Answers like Prometheus for a service of capacity 40/s fed by the generator's rate."""
    with fake_prometheus(plan.mix_rate, CAPACITY) as url:
        yield url


def test_the_capacity_test_steps_measures_restores_and_reports(
    etcd: EtcdServer,
    client: EtcdClient,
    plan: LoadPlan,
    prometheus: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {"rate": 7, "mix": {"get_stock": 1}}
    client.put(LOAD_SETTINGS_KEY, json.dumps(before))
    args = [
        "--etcd",
        etcd.endpoint,
        "--prometheus",
        prometheus,
        "--start",
        "10",
        "--ceiling",
        "80",
        "--steps",
        "8",
        "--hold",
        "1",
        "--settle",
        "0.3",
        "--max-seconds",
        "30",
        "--apply",
        "cap",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    out = printed.out.strip().splitlines()
    # The plan first, so the first step's settle and hold are not a silence
    assert printed.err.startswith("stepping gateway from 10 to 80/s offered in 8 steps of 1.3 s")
    assert out[0].split()[:2] == ["offered/s", "goodput/s"]
    report = json.loads(out[-1])
    points = report["points"]
    offered = [s["offered"] for s in points["steps"]]
    assert offered[:4] == [10, 20, 30, 40] and len(offered) >= 5
    assert points["C"]["goodput"] == CAPACITY
    assert points["A"]["offered"] == 30 and points["B"]["offered"] == 40
    assert points["limit"] == 24  # 0.8 of A's goodput
    assert "p99 collapsed" in report["stopped"]
    assert any(line.startswith("manual estimate") for line in out)
    assert points["concurrency"] == 1  # 40/s at C within the 10 ms low-load p99, rounded up
    assert any(line.startswith("cap in flight per instance: 1 ") for line in out)
    assert any(line.startswith("limit for the whole service: 24 calls/s, burst 1") for line in out)
    # --apply cap: written through the audited control plane, as the panel's second Apply does
    kv = client.get("/governance/gateway/server")
    assert kv is not None
    assert json.loads(kv.value)["methods"]["*"]["bulkhead"] == {"max_concurrent": 1, "shared": "*"}
    assert report["applied"]["key"] == "server" and report["applied"]["revision"] == kv.mod_revision
    [audited] = client.get_prefix("/governance-audit/gateway/").items
    assert json.loads(audited.value)["actor"] == "capacity-test"
    assert client.get("/governance/gateway/cluster") is None  # the cap, not the limit too
    # the settings in force before are back, in etcd and in the generator
    kv = client.get(LOAD_SETTINGS_KEY)
    assert kv is not None and json.loads(kv.value) == before
    assert plan.settings.rate == 7 and plan.settings.mix == {"get_stock": 1}
    audit = client.get_prefix("/governance-audit/loadgen/").items
    assert len(audit) == len(offered) + 1  # each step and the restore, audited


def test_an_absent_key_is_deleted_again(
    etcd: EtcdServer, client: EtcdClient, plan: LoadPlan, prometheus: str
) -> None:
    args = [
        "--etcd",
        etcd.endpoint,
        "--prometheus",
        prometheus,
        "--start",
        "10",
        "--ceiling",
        "20",
        "--steps",
        "2",
        "--hold",
        "1",
        "--settle",
        "0",
    ]
    assert main(args) == 1  # two steps: not enough data for a recommendation
    assert client.get(LOAD_SETTINGS_KEY) is None
    assert plan.settings.rate == 5.0


def test_without_a_load_generator_nothing_is_written(
    etcd: EtcdServer, client: EtcdClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--etcd", etcd.endpoint, "--prometheus", "http://127.0.0.1:9"]) == EXIT_REFUSED
    assert "no load generator" in capsys.readouterr().err
    assert client.get(LOAD_SETTINGS_KEY) is None
