"""Faults injected through etcd: they reach calls on a real server through the whole concern chain
(errors at the configured rate, latency, CPU burn; none once the key is deleted), an invalid fault
config is refused and reported, fault validation names the field, and the aio injector never
sleeps on the event loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from echo_service import SyncEcho
from helpers import make_config, metric_value, trailers, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from live_rules.support import APPLY_WITHIN, ECHO, LIMIT_50, StartLive, put, server_limit, wait_status
from telemetry.control import FAULT_KEY, Fault, FaultError, FaultInjector, rules_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import Governance
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side

# -- faults ---------------------------------------------------------------------------------------


@pytest.fixture
def faulty_server() -> Iterator[tuple[str, FaultInjector, CollectorRegistry]]:
    """A real sync Echo server with the full concern chain and fault injection last (as the
    handle will build it); a cycling random source makes error_rate 0.5 deterministic."""
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("faulty"), registry=registry)
    faults = FaultInjector(random=itertools.cycle([0.2, 0.8]).__next__)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4),
        interceptors=[telemetry.ServerInterceptor([*tel.server_concerns(), faults])],
    )
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(tel), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", faults, registry
    server.stop(grace=None).wait(5)
    tel.shutdown()


def test_faults_from_etcd_reach_calls_on_a_real_server(
    client: EtcdClient,
    live: StartLive,
    service: str,
    faulty_server: tuple[str, FaultInjector, CollectorRegistry],
) -> None:
    target, faults, registry = faulty_server
    live(Governance(), service, faults=faults)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(target))
    stub.Unary(echo_pb2.EchoRequest(text="warm"), timeout=5)

    put(client, service, "faults", {"*": {"error_rate": 1.0, "error_code": "UNAVAILABLE"}})
    wait_until(lambda: faults.faults.get("*") == Fault(error_rate=1.0), APPLY_WITHIN, "faults")
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as failed:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert (FAULT_KEY, "error") in trailers(failed.value)
    handled = metric_value(
        registry, "grpc_server_handled_total", grpc_type="unary", grpc_service=ECHO,
        grpc_method="Unary", grpc_code="Unavailable",
    )  # fmt: skip
    assert handled == 3  # the chain saw the injected failures like real ones

    put(client, service, "faults", {"*": {"error_rate": 0.5, "error_code": "INTERNAL"}})
    wait_until(lambda: faults.faults["*"].error_rate == 0.5, APPLY_WITHIN, "error rate 0.5")
    codes = []
    for _ in range(4):
        try:
            stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    assert codes.count(grpc.StatusCode.INTERNAL) == 2 and codes.count(grpc.StatusCode.OK) == 2

    put(client, service, "faults", {"*": {"error_rate": 0}, f"{ECHO}/Unary": {"latency_ms": 150}})
    wait_until(lambda: f"{ECHO}/Unary" in faults.faults, APPLY_WITHIN, "latency fault")
    started = time.monotonic()
    stub.Unary(echo_pb2.EchoRequest(text="slow"), timeout=5)  # error_rate 0: never fails
    assert time.monotonic() - started >= 0.15

    put(client, service, "faults", {f"{ECHO}/*": {"cpu_burn_ms": 100}})
    wait_until(lambda: f"{ECHO}/*" in faults.faults, APPLY_WITHIN, "cpu fault")
    cpu = time.process_time()
    stub.Unary(echo_pb2.EchoRequest(text="hot"), timeout=5)
    assert time.process_time() - cpu >= 0.1

    put(client, service, "faults", {"*": {"error_rate": 1.0}})
    wait_until(lambda: "*" in faults.faults, APPLY_WITHIN, "failing again")
    client.delete(rules_key(service, "faults"))  # no key: no faults
    wait_until(lambda: not faults.faults, APPLY_WITHIN, "faults cleared")
    stub.Unary(echo_pb2.EchoRequest(text="calm"), timeout=5)


def test_an_invalid_fault_config_is_refused_and_reported(
    client: EtcdClient, live: StartLive, service: str
) -> None:
    faults = FaultInjector()
    gov = Governance()
    live(gov, service, faults=faults)
    put(client, service, "faults", {"*": {"latency_ms": 5}})
    wait_until(lambda: "*" in faults.faults, APPLY_WITHIN, "faults in force")

    bad = put(client, service, "faults", {f"{ECHO}/Unary": {"error_rate": 1.5}})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"] == (f"faults.{ECHO}/Unary.error_rate: must be between 0 and 1, got 1.5")
    assert faults.faults == {"*": Fault(latency_ms=5)}

    # Rules and faults are one whole: a rule change waits until the faults are fixed.
    put(client, service, "server", LIMIT_50)
    code = put(client, service, "faults", {"*": {"error_code": "OK"}})
    rejected = wait_status(client, service, code, "rejected")
    assert rejected["error"].startswith("faults.*.error_code: must be a gRPC status code name")
    assert server_limit(gov) is None
    fixed = put(client, service, "faults", {})
    wait_status(client, service, fixed, "applied")
    assert server_limit(gov) == 50 and not faults.faults


def test_fault_validation_names_the_field() -> None:
    injector = FaultInjector()
    for spec, message in [
        ("{", "faults: not valid JSON"),
        ({"Echo": {}}, "faults.Echo: method pattern must be"),
        ({"*": {"latency": 1}}, "faults.*.latency: unknown field"),
        ({"*": {"latency_ms": -1}}, "faults.*.latency_ms: must be between 0 and 60000"),
        ({"*": {"cpu_burn_ms": True}}, "faults.*.cpu_burn_ms: must be a finite number"),
        ({"*": []}, "faults.*: must be an object"),
    ]:
        with pytest.raises(FaultError, match="^" + message.replace("*", r"\*")):
            injector.configure(spec)  # type: ignore[arg-type]
    assert not injector.faults


def test_aio_injector_never_sleeps_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the module faults calls
    sync = FaultInjector()
    aio = sync.linked(aio=True)  # the same configuration, for a grpc.aio server
    sync.configure({"*": {"latency_ms": 500, "error_rate": 1.0, "error_code": "ABORTED"}})
    state = CallState(MethodInfo(f"/{ECHO}/Unary", RpcKind.UNARY, Side.SERVER), 0.0, None, "")
    with pytest.raises(telemetry.RejectCall) as rejected:
        aio.on_start(state)
    assert slept == []
    with pytest.raises(telemetry.RejectCall):
        sync.on_start(state)
    assert slept == [0.5]  # the sync one does sleep: the check above can fail
    assert rejected.value.code == grpc.StatusCode.ABORTED
