"""Governance's live state on real loopback servers: its state exported as metrics, the adaptive
limiter shedding under CPU pressure, grpc's poller refusing beyond the limit before the
interceptor chain, and a standing queue drained by refusing calls that waited.
"""

from __future__ import annotations

from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from governance_loopback import ECHO, decisions
from helpers import metric_value, trailers, wait_until

from telemetry.governance import Governance

# -- observability of the live state ---------------------------------------------------------------


def test_governance_state_is_exported(sync_service: Any) -> None:
    gov = Governance({"adaptive": {"enabled": True}}, cpu=lambda: 0.1)
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert metric_value(b.registry, "governance_rules_generation") == 1
    assert metric_value(b.registry, "governance_adaptive_limit") >= 1
    adaptive = gov.snapshot().adaptive
    assert adaptive is not None
    wait_until(
        lambda: stub.Unary(echo_pb2.EchoRequest(text="x")) and adaptive.cpu > 0, message="cpu read"
    )
    assert metric_value(b.registry, "governance_pressure", signal="cpu") == pytest.approx(0.1)


def test_adaptive_limiter_sheds_under_cpu_pressure(sync_service: Any) -> None:
    gov = Governance(
        {"adaptive": {"enabled": True, "initial_limit": 2, "max_limit": 2}}, cpu=lambda: 0.99
    )
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    adaptive = gov.snapshot().adaptive
    assert adaptive is not None  # signals are read once per 100-ms bucket: wait for the first read
    wait_until(
        lambda: stub.Unary(echo_pb2.EchoRequest(text="x")) and adaptive.cpu > 0.9, message="cpu read"
    )
    futures = [stub.Unary.future(echo_pb2.EchoRequest(text="x", sleep_seconds=0.3)) for _ in range(6)]
    codes = []
    for future in futures:
        try:
            future.result()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
    assert codes.count(grpc.StatusCode.OK) >= 1
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    assert decisions(b.registry, "adaptive", "rejected") >= 1


def test_under_pressure_grpcs_poller_refuses_beyond_the_limit_before_the_chain(
    sync_service: Any,
) -> None:
    pressure = {"cpu": 0.99}
    gov = Governance(
        {"adaptive": {"enabled": True, "initial_limit": 2, "max_limit": 2, "cool_off": 0.2}},
        cpu=lambda: pressure["cpu"],
    )
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    adaptive = gov.snapshot().adaptive
    assert adaptive is not None
    wait_until(  # each call sets the cap for the next: the limit, once the CPU was read
        lambda: stub.Unary(echo_pb2.EchoRequest(text="x")) and adaptive.admission_cap() is not None,
        message="cpu read",
    )
    unary = {"grpc_type": "unary", "grpc_service": ECHO, "grpc_method": "Unary"}
    started = metric_value(b.registry, "grpc_server_started_total", **unary)

    def burst() -> list[Any]:
        futures = [
            stub.Unary.future(echo_pb2.EchoRequest(text="x", sleep_seconds=0.3)) for _ in range(6)
        ]
        return [future.exception() for future in futures]

    errors = [error for error in burst() if error is not None]
    assert errors and len(errors) <= 5  # at least one admitted, within the limit (<= 2)
    assert {(e.code(), e.details()) for e in errors} == {
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
    }
    # Refused in the poller: no worker, no concern chain; only the decision counter saw them.
    admitted = 6 - len(errors)
    assert metric_value(b.registry, "grpc_server_started_total", **unary) == started + admitted
    assert decisions(b.registry, "adaptive", "rejected") == len(errors)
    assert adaptive.last_shed is not None  # reported to the limiter: its cool-off started

    pressure["cpu"] = 0.2  # pressure gone: after the cool-off the cap is lifted
    wait_until(
        lambda: stub.Unary(echo_pb2.EchoRequest(text="x")) and adaptive.admission_cap() is None,
        message="cap lifted",
    )
    stub.Unary(echo_pb2.EchoRequest(text="x"))  # this call lifts the cap grpc checks
    assert all(error is None for error in burst())


def test_standing_queue_is_drained_by_refusing_calls_that_waited(sync_service: Any) -> None:
    # CPU stays low: only the queue-delay gate (CoDel) can refuse here.
    gov = Governance(
        {"adaptive": {"enabled": True, "queue_target": 0.002, "queue_interval": 0.05}},
        cpu=lambda: 0.0,
    )
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    stub.Unary(echo_pb2.EchoRequest(text="warm"))
    # 40 calls of 30 ms on 8 workers: a queue that stands for several 50-ms intervals.
    futures = [stub.Unary.future(echo_pb2.EchoRequest(text="x", sleep_seconds=0.03)) for _ in range(40)]
    refused = []
    ok = 0
    for future in futures:
        try:
            future.result()
            ok += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            refused.append(error)
    assert ok >= 8
    assert refused, "no call was refused for its queue delay"
    assert all(error.details() == "adaptive: queue" for error in refused)
    assert dict(trailers(refused[0]))["x-governance"] == "rejected:adaptive"
    assert decisions(b.registry, "adaptive", "rejected") == len(refused)
