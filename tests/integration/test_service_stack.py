"""The whole etcd path through the public API: Telemetry(etcd=...) registers, balances by service
name, follows live rules and fault knobs, and keeps calling known instances while etcd is down."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from echo_service import SyncEcho
from helpers import make_config, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.control.live_rules import rules_key, status_key
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.testing.etcd_server import EtcdServer

ECHO = "telemetry.test.Echo"


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def writer(etcd: EtcdServer) -> Iterator[EtcdClient]:
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    yield client
    client.close()


class Instance:
    def __init__(self, etcd: EtcdServer, service: str, instance_id: str, governance: Any) -> None:
        self.tel = telemetry.Telemetry(
            make_config(service), registry=CollectorRegistry(), governance=governance,
            etcd=etcd.endpoint, instance_id=instance_id,
        )  # fmt: skip
        self.calls = 0
        outer = self

        class Counting(SyncEcho):
            def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
                outer.calls += 1
                return super().Unary(request, context)

        self.server = self.tel.server(max_workers=4)
        echo_pb2_grpc.add_EchoServicer_to_server(Counting(self.tel), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.registration = self.tel.register(f"127.0.0.1:{port}", ttl=3)

    def close(self) -> None:
        self.server.stop(None)
        self.tel.shutdown()


@pytest.fixture
def start(etcd: EtcdServer) -> Iterator[Callable[..., Instance]]:
    made: list[Instance] = []

    def make(service: str, instance_id: str, governance: Any = None) -> Instance:
        made.append(Instance(etcd, service, instance_id, governance if governance else {}))
        return made[-1]

    yield make
    for instance in made:
        instance.close()


def call(stub: Any) -> str:
    return str(stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5).text)


def test_channel_by_service_name_balances_and_picks_up_new_instances(
    etcd: EtcdServer, start: Callable[..., Instance]
) -> None:
    a = start("echo", "a")
    client = start("caller", "c")
    assert isinstance(client.tel.channel("echo"), ServiceChannel)  # a bare name is a service
    stub = echo_pb2_grpc.EchoStub(client.tel.service_channel("echo", balancer="round_robin"))
    wait_until(lambda: client.tel.discovery and client.tel.discovery.directory.instances("echo"))
    assert call(stub) == "x"
    b = start("echo", "b")
    assert b.registration.wait_registered(5)
    wait_until(lambda: call(stub) and b.calls > 0, timeout=1, message="new instance gets traffic")
    before = a.calls
    wait_until(lambda: call(stub) and a.calls > before, timeout=2, message="both instances serve")


def test_known_instances_keep_serving_while_etcd_is_down(
    etcd: EtcdServer, start: Callable[..., Instance]
) -> None:
    start("echo", "a")
    start("echo", "b")
    client = start("caller", "c")
    assert client.tel.discovery is not None
    wait_until(lambda: len(client.tel.discovery.directory.instances("echo")) == 2)
    stub = echo_pb2_grpc.EchoStub(client.tel.channel("echo"))
    etcd.stop()
    assert all(call(stub) == "x" for _ in range(50))


def test_rules_and_faults_written_to_etcd_reach_every_instance(
    etcd: EtcdServer, writer: EtcdClient, start: Callable[..., Instance]
) -> None:
    instances = [start("echo", f"i{n}") for n in range(2)]
    limit = {"methods": {"*": {"rate_limit": {"limit": 7}}}}
    revision = writer.put(rules_key("echo", "server"), json.dumps(limit))

    def applied(instance: Instance) -> bool:
        gov = instance.tel.governance
        rule = gov.rules.server.methods.get("*") if gov else None
        return rule is not None and rule.rate_limit is not None and rule.rate_limit.limit == 7

    wait_until(lambda: all(applied(i) for i in instances), timeout=2, message="rule applied")
    for n in range(2):
        wait_until(lambda n=n: writer.get(status_key("echo", f"i{n}")), message="status written")
        status = writer.get(status_key("echo", f"i{n}"))
        assert status is not None
        assert json.loads(status.value)["revision"] >= revision

    writer.put(rules_key("echo", "faults"), json.dumps({"*": {"error_rate": 1.0}}))
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(instances[0].registration.instance.address))

    def failing() -> bool:
        try:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
        except grpc.RpcError as error:
            return bool(error.code() == grpc.StatusCode.UNAVAILABLE)
        return False

    wait_until(failing, timeout=2, message="injected fault")
    writer.delete(rules_key("echo", "faults"))
    wait_until(lambda: not failing(), timeout=2, message="fault cleared")
