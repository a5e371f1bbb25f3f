"""Deadline propagation: a 500 ms deadline set at the caller reaches C reduced by the time spent;
a call with no time left fails fast with DEADLINE_EXCEEDED without reaching the network."""

from __future__ import annotations

from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from calls import KINDS, call_aio, call_sync, requests_for
from helpers import make_config, metric_value, wait_until, wait_until_async

import telemetry

LABELS = {"grpc_type": "unary", "grpc_service": "telemetry.test.Echo", "grpc_method": "Unary"}


def check_remaining(replies: list[Any]) -> None:
    a, b, c = replies[0].hops
    # grpc core rounds the wire timeout up a little (30 s arrives as ~30.1 s), hence the slack.
    assert 0 < c.remaining_seconds < b.remaining_seconds < a.remaining_seconds <= 0.5 * 1.05
    # B slept 0.1 s before calling C: C sees at least that much less.
    assert b.remaining_seconds - c.remaining_seconds >= 0.09


@pytest.mark.parametrize("kind", KINDS)
def test_sync_deadline_reaches_c_reduced(kind: str, sync_service: Any) -> None:
    c = sync_service("c")
    b = sync_service("b")
    a = sync_service("a")
    # Each hop sleeps sleep_seconds before forwarding, so time visibly passes along the chain.
    request = requests_for(kind, [b.target, c.target], sleep_seconds=0.1)
    with grpc.insecure_channel(a.target) as channel:
        replies = call_sync(echo_pb2_grpc.EchoStub(channel), kind, request, timeout=0.5)
    check_remaining(replies)


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_deadline_reaches_c_reduced(kind: str, aio_service: Any) -> None:
    c = await aio_service("c")
    b = await aio_service("b")
    a = await aio_service("a")
    request = requests_for(kind, [b.target, c.target], sleep_seconds=0.1)
    async with grpc.aio.insecure_channel(a.target) as channel:
        replies = await call_aio(echo_pb2_grpc.EchoStub(channel), kind, request, timeout=0.5)
    check_remaining(replies)


def test_no_deadline_means_none_downstream(sync_service: Any) -> None:
    b = sync_service("b")
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel:
        reply = echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(hops=[b.target]))
    # A's own downstream call sets timeout=30: B sees that, A saw none.
    assert reply.hops[0].remaining_seconds == -1.0
    assert 29 < reply.hops[1].remaining_seconds <= 30 * 1.05


def test_sync_expired_deadline_fails_fast_without_network(sync_service: Any, logs: Any) -> None:
    b = sync_service("b")
    a = sync_service("a")
    # A sleeps 0.3 s with a 0.2 s deadline, then calls B: nothing is left, so B is never reached.
    with grpc.insecure_channel(a.target) as channel, pytest.raises(grpc.RpcError) as failure:
        echo_pb2_grpc.EchoStub(channel).Unary(
            echo_pb2.EchoRequest(hops=[b.target], sleep_seconds=0.3), timeout=0.2
        )
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    labels = {"grpc_type": "unary", "grpc_service": "telemetry.test.Echo", "grpc_method": "Unary"}
    client_failed = {**labels, "grpc_code": "DeadlineExceeded"}
    # The caller gave up at 0.2 s; A reaches its downstream call at 0.3 s and refuses it locally.
    wait_until(
        lambda: metric_value(a.registry, "grpc_client_handled_total", **client_failed) == 1,
        message="A's refused downstream call counted",
    )
    assert metric_value(b.registry, "grpc_server_started_total", **labels) == 0
    # The refused call never reached a server, so the client's error line is its only record.
    (refused,) = logs.matching(event="finished call", service="a", **{"grpc.component": "client"})
    assert refused["grpc.code"] == "DeadlineExceeded" and refused["level"] == "warning"


async def test_aio_expired_deadline_cancels_handler_and_finishes_its_call(
    aio_service: Any,
) -> None:
    # grpc.aio cancels A's handler when the deadline passes: its span and metrics still finish.
    b = await aio_service("b")
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await echo_pb2_grpc.EchoStub(channel).Unary(
                echo_pb2.EchoRequest(hops=[b.target], sleep_seconds=0.3), timeout=0.2
            )
    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server_failed = {**LABELS, "grpc_code": "DeadlineExceeded"}
    await wait_until_async(  # A is served by this very loop
        lambda: metric_value(a.registry, "grpc_server_handled_total", **server_failed) == 1,
        message="A's failed call counted",
    )
    assert metric_value(a.registry, "grpc_server_handled_total", **server_failed) == 1
    assert metric_value(a.registry, "grpc_server_in_flight", **LABELS) == 0
    assert metric_value(b.registry, "grpc_server_started_total", **LABELS) == 0
    (span,) = a.spans.spans()
    assert span.attributes["rpc.response.status_code"] == "DEADLINE_EXCEEDED"


async def test_aio_client_with_no_time_left_fails_fast_without_network(aio_service: Any) -> None:
    b = await aio_service("b")
    tel = telemetry.Telemetry(make_config("caller"))
    async with tel.aio_channel(b.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for kind in KINDS:
            with telemetry.deadline_scope(0.0), pytest.raises(grpc.aio.AioRpcError) as failure:
                await call_aio(stub, kind, requests_for(kind, []))
            assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert metric_value(b.registry, "grpc_server_started_total", **LABELS) == 0
    refused = {**LABELS, "grpc_code": "DeadlineExceeded"}
    assert metric_value(tel.registry, "grpc_client_handled_total", **refused) == 1
    tel.shutdown()


def test_deadline_scope_outside_a_server(sync_service: Any) -> None:
    b = sync_service("b")
    tel = telemetry.Telemetry(telemetry.TelemetryConfig(metrics_port=None, traces_exporter="none"))
    with tel.channel(b.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with telemetry.deadline_scope(0.4):
            reply = stub.Unary(echo_pb2.EchoRequest(), timeout=10)  # the closer deadline wins
            assert 0 < reply.hops[0].remaining_seconds <= 0.4 * 1.05
        with telemetry.deadline_scope(0.0), pytest.raises(grpc.RpcError) as failure:
            stub.Unary(echo_pb2.EchoRequest())
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with telemetry.deadline_scope(0.0), pytest.raises(grpc.RpcError) as stream_failure:
            list(stub.ServerStream(echo_pb2.EchoRequest()))
        assert stream_failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The channel's future() and with_call() paths, sent and refused.
        assert stub.Unary.future(echo_pb2.EchoRequest(text="f"), timeout=10).result().text == "f"
        reply, call = stub.Unary.with_call(echo_pb2.EchoRequest(text="w"), timeout=10)
        assert reply.text == "w" and call.code() == grpc.StatusCode.OK
        with telemetry.deadline_scope(0.0):
            refused = stub.Unary.future(echo_pb2.EchoRequest())
        assert refused.exception().code() == grpc.StatusCode.DEADLINE_EXCEEDED
    labels = {"grpc_type": "unary", "grpc_service": "telemetry.test.Echo", "grpc_method": "Unary"}
    # grpc wakes future.result() before it runs done-callbacks: the future's finish lands just after.
    wait_until(
        lambda: metric_value(tel.registry, "grpc_client_handled_total", **labels, grpc_code="OK") == 3,
        message="the future's call counted",
    )
    refused_count = metric_value(
        tel.registry, "grpc_client_handled_total", **labels, grpc_code="DeadlineExceeded"
    )
    assert refused_count == 2
    tel.shutdown()
