"""Discovery, watches and live rules against a real 3-member etcd cluster losing members.

Each test starts its own cluster (telemetry.testing.etcd_cluster: 50 ms heartbeats, 500 ms election
timeout) and kills members with SIGKILL: a follower, the leader, or the very member a client uses.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import metric_value, wait_until
from prometheus_client import CollectorRegistry

from telemetry.control.live_rules import LiveRules, rules_key
from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig, EtcdError
from telemetry.discovery.instance import Instance
from telemetry.discovery.metrics import DiscoveryCollector
from telemetry.discovery.registry import Registration
from telemetry.discovery.watch import PrefixWatcher
from telemetry.governance.engine import Governance
from telemetry.testing.etcd_cluster import EtcdCluster

TTL = 2


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster() as started:
        yield started


@pytest.fixture
def clients(cluster: EtcdCluster) -> Iterator[Callable[..., EtcdClient]]:
    """``clients(first=i)``: a client given every member, calling member ``i`` first."""
    made: list[EtcdClient] = []

    def make(first: int) -> EtcdClient:
        made.append(EtcdClient(EtcdConfig(endpoints=cluster.endpoints_from(first))))
        return made[-1]

    yield make
    for client in made:
        client.close()


def holds(condition: Callable[[], bool], seconds: float, message: str) -> None:
    """``condition()`` stays true for ``seconds`` (polled): what is tested is time passing."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert condition(), message
        time.sleep(0.02)


def mod_revision(client: EtcdClient, key: str) -> int | None:
    try:
        found = client.get(key)
    except EtcdError:
        return None
    return found.mod_revision if found is not None else None


def ids(directory: ServiceDirectory) -> set[str]:
    return {i.id for i in directory.instances("order")}


def test_registration_survives_losing_a_follower_then_the_leader(
    cluster: EtcdCluster, clients: Callable[..., EtcdClient]
) -> None:
    registering = clients(first=cluster.follower())
    watching = clients(first=cluster.leader())
    directory = ServiceDirectory(watching).start()
    instance = Instance(service="order", id="a", address="127.0.0.1:50001")
    registration = Registration(registering, instance, ttl=TTL).start()
    try:
        assert registration.wait_registered(5)
        wait_until(lambda: ids(directory) == {"a"}, message="registered")
        written = mod_revision(watching, instance.key)
        assert written is not None

        def listed() -> bool:
            return ids(directory) == {"a"}

        victim = cluster.index(registering.current_endpoint)  # the follower it keeps alive through
        cluster.stop_member(victim)
        holds(listed, 2 * TTL, "registered through the loss of a follower")
        # The same write, never re-registered: its lease was kept alive all along.
        assert mod_revision(watching, instance.key) == written
        assert registering.current_endpoint != cluster.members[victim].endpoint
        cluster.restart_member(victim)

        leader = cluster.leader()
        cluster.stop_member(leader)
        holds(listed, 2 * TTL, "registered through the loss of the leader")
        assert mod_revision(watching, instance.key) == written
        assert watching.current_endpoint != cluster.members[leader].endpoint
    finally:
        registration.deregister()
        directory.stop()


def test_a_watch_on_the_killed_leader_resumes_on_another_member(
    cluster: EtcdCluster, clients: Callable[..., EtcdClient]
) -> None:
    leader = cluster.leader()
    watching = clients(first=leader)
    writer = clients(first=leader)  # its writes must get through the election too
    watcher = PrefixWatcher(watching, "/cluster-test/").start()
    try:
        assert watcher.wait_synced(5)
        writer.put("/cluster-test/before", "1")
        writer.put("/cluster-test/doomed", "1")
        wait_until(lambda: len(watcher.state) == 2, message="the first writes")
        cluster.stop_member(leader)
        # Written while the watch is broken: it resumes from its last revision and gets them all.
        writer.put("/cluster-test/after", "2")
        writer.delete("/cluster-test/doomed")
        writer.put("/cluster-test/before", "3")
        expected = {"/cluster-test/before": b"3", "/cluster-test/after": b"2"}
        wait_until(lambda: dict(watcher.state) == expected, timeout=5, message="writes after the kill")
        assert watching.current_endpoint != cluster.members[leader].endpoint
        assert writer.current_endpoint != cluster.members[leader].endpoint
    finally:
        watcher.stop()


def test_a_watch_on_a_frozen_member_moves_to_another_within_seconds(
    cluster: EtcdCluster, clients: Callable[..., EtcdClient]
) -> None:
    # SIGSTOP: the member neither answers nor closes its connections (a frozen VM, a host gone):
    # only the watch's own watchdog notices, not gRPC's keepalive (a minute).
    frozen = cluster.follower()
    watching = clients(first=frozen)
    writer = clients(first=(frozen + 1) % len(cluster.members))
    watcher = PrefixWatcher(watching, "/cluster-test/").start()
    pid = cluster.members[frozen].pid
    assert pid is not None
    try:
        assert watcher.wait_synced(5)
        os.kill(pid, signal.SIGSTOP)
        writer.put("/cluster-test/while-frozen", "1")
        started = time.monotonic()
        wait_until(
            lambda: "/cluster-test/while-frozen" in watcher.state, timeout=30,
            message="the write made while the watched member was frozen",
        )  # fmt: skip
        print(f"frozen member -> watch resumed elsewhere: {time.monotonic() - started:.1f} s")
        assert watching.current_endpoint != cluster.members[frozen].endpoint
    finally:
        os.kill(pid, signal.SIGCONT)
        watcher.stop()


def test_live_rules_changed_after_the_leader_is_killed_are_applied(
    cluster: EtcdCluster, clients: Callable[..., EtcdClient]
) -> None:
    leader = cluster.leader()
    governance = Governance()
    live = LiveRules(clients(first=leader), governance, service="echo", instance_id="i0").start()
    writer = clients(first=leader)
    try:
        assert live.wait_ready(5)
        cluster.stop_member(leader)
        killed = time.monotonic()
        doc = {"methods": {"*": {"rate_limit": {"limit": 7}}}}
        writer.put(rules_key("echo", "server"), json.dumps(doc))
        written = time.monotonic()

        def limit() -> float | None:
            rule = governance.rules.server.methods.get("*")
            return rule.rate_limit.limit if rule is not None and rule.rate_limit is not None else None

        wait_until(lambda: limit() == 7, timeout=5, message="rule applied after the leader's loss")
        applied = time.monotonic()
        took = f"{applied - killed:.3f}s after the kill ({applied - written:.3f}s after the write)"
        print(f"rule applied {took}")
        # The status is written back through another member too.
        wait_until(lambda: (live.status or {}).get("state") == "applied", message="status")
    finally:
        live.stop()


def test_the_client_reports_its_member_and_each_failover(
    cluster: EtcdCluster, clients: Callable[..., EtcdClient], logs: object
) -> None:
    first = cluster.follower()
    client = clients(first=first)
    directory = ServiceDirectory(client).start()
    registry = CollectorRegistry()
    registry.register(DiscoveryCollector(directory))
    dead, successor = cluster.endpoints_from(first)[:2]
    try:
        assert directory.wait_synced(5)
        assert client.current_endpoint == dead
        assert metric_value(registry, "etcd_client_endpoint_info", endpoint=dead) == 1
        assert metric_value(registry, "etcd_client_failovers_total") == 0
        cluster.stop_member(first)
        client.put("/cluster-test/k", "v")  # fails on the dead member, retried on the next
        assert client.current_endpoint == successor
        assert metric_value(registry, "etcd_client_endpoint_info", endpoint=successor) == 1
        assert metric_value(registry, "etcd_client_endpoint_info", endpoint=dead) == 0  # gone
        assert metric_value(registry, "etcd_client_failovers_total") == 1
        lines = logs.wait_for(  # type: ignore[attr-defined]
            lambda events: any("now using" in str(e.get("event")) for e in events)
        )
        (line,) = [e for e in lines if "now using" in str(e.get("event"))]
        assert dead in line["event"] and successor in line["event"]
        assert line.get("level") == "info"
    finally:
        directory.stop()
