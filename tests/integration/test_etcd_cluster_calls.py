"""Real gRPC calls through discovery while the etcd leader is killed: none fails, and a rule
written after the kill is in force on every instance within a second (asserted with room: 5 s)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import echo_pb2
import echo_pb2_grpc
import pytest
from echo_service import SyncEcho
from helpers import make_config, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.control.live_rules import rules_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.testing.callers import BackgroundCaller
from telemetry.testing.etcd_cluster import EtcdCluster


class Node:
    """A Telemetry handle with etcd (discovery and live rules), serving Echo on loopback."""

    def __init__(self, etcd: EtcdConfig, service: str, instance_id: str) -> None:
        self.tel = telemetry.Telemetry(
            make_config(service), registry=CollectorRegistry(), governance={}, etcd=etcd,
            instance_id=instance_id,
        )  # fmt: skip
        self.server = self.tel.server(max_workers=4)
        echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(self.tel), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.registration = self.tel.register(f"127.0.0.1:{port}", ttl=3)

    def limit(self) -> float | None:
        governance = self.tel.governance
        rule = governance.rules.server.methods.get("*") if governance else None
        return rule.rate_limit.limit if rule is not None and rule.rate_limit is not None else None

    def close(self) -> None:
        self.server.stop(None)
        self.tel.shutdown()


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster() as started:
        yield started


def test_calls_through_discovery_never_fail_while_the_leader_is_killed(cluster: EtcdCluster) -> None:
    leader = cluster.leader()
    # Every process calls the leader first: its loss hits all of them.
    etcd = EtcdConfig(endpoints=cluster.endpoints_from(leader))
    nodes = [Node(etcd, "echo", f"s{i}") for i in range(2)]
    caller_node = Node(etcd, "caller", "c")
    writer = EtcdClient(etcd)
    caller: BackgroundCaller | None = None
    try:
        discovery = caller_node.tel.discovery
        assert discovery is not None
        wait_until(lambda: len(discovery.directory.instances("echo")) == 2, message="both instances")
        stub = echo_pb2_grpc.EchoStub(caller_node.tel.channel("echo"))
        caller = BackgroundCaller(lambda: stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5))
        wait_until(lambda: caller.ok >= 20, message="calls flowing")

        cluster.stop_member(leader)
        killed = time.monotonic()
        doc = {"methods": {"*": {"rate_limit": {"limit": 100_000}}}}  # a rule no call runs into
        writer.put(rules_key("echo", "server"), json.dumps(doc))
        written = time.monotonic()
        wait_until(lambda: all(n.limit() == 100_000 for n in nodes), timeout=5, message="rule applied")
        applied = time.monotonic()
        print(
            f"rule applied on both instances {applied - killed:.3f}s after the leader was killed "
            f"({applied - written:.3f}s after the write returned)"
        )
        before = caller.ok
        wait_until(lambda: caller.ok >= before + 50, message="calls still flowing")
        caller.stop()
        assert caller.failed == [], caller.failed[:5]
        assert applied - killed < 5.0
        dead = cluster.members[leader].endpoint
        wait_until(lambda: discovery.client.current_endpoint != dead, message="caller moved")
        assert all(n.tel.discovery and n.tel.discovery.registration for n in nodes)
        assert len(discovery.directory.instances("echo")) == 2
    finally:
        if caller is not None:
            caller.stop()
        writer.close()
        for node in [*nodes, caller_node]:
            node.close()
