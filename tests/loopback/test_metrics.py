"""RPC metrics match the calls made, on both sides, sync and aio; the OpenMetrics scrape carries
trace_id exemplars; cardinality is bounded."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import echo_pb2_grpc
import grpc.aio
import pytest
from calls import KINDS, call_aio, call_sync, requests_for
from helpers import make_config, metric_value, wait_until, wait_until_async
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.metrics.rpc import SideMetrics
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side

METHODS = {
    "unary": "Unary",
    "server_stream": "ServerStream",
    "client_stream": "ClientStream",
    "bidi_stream": "Bidi",
}
# (messages received, messages sent) by the server per call; requests_for sends 2 on streams and
# asks for 2 replies on server streams.
SERVER_MESSAGES = {
    "unary": (1, 1),
    "server_stream": (1, 2),
    "client_stream": (2, 1),
    "bidi_stream": (2, 2),
}
CALLS = 3


def check_counts(server_registry: CollectorRegistry, client_registry: CollectorRegistry) -> None:
    for kind in KINDS:
        labels = {
            "grpc_type": kind,
            "grpc_service": "telemetry.test.Echo",
            "grpc_method": METHODS[kind],
        }
        received, sent = SERVER_MESSAGES[kind]
        for side, registry in (("server", server_registry), ("client", client_registry)):

            def value(
                name: str,
                registry: CollectorRegistry = registry,
                labels: dict[str, str] = labels,
                **extra: str,
            ) -> float:
                return metric_value(registry, name, **labels, **extra)

            assert value(f"grpc_{side}_started_total") == CALLS, (side, kind)
            assert value(f"grpc_{side}_handled_total", grpc_code="OK") == CALLS, (side, kind)
            assert value(f"grpc_{side}_handling_seconds_count") == CALLS, (side, kind)
            assert value(f"grpc_{side}_in_flight") == 0
            mine = (received, sent) if side == "server" else (sent, received)
            assert value(f"grpc_{side}_msg_received_total") == CALLS * mine[0], (side, kind)
            assert value(f"grpc_{side}_msg_sent_total") == CALLS * mine[1], (side, kind)


def scrape(url: str, openmetrics: bool) -> str:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as reply:
        return str(reply.read().decode())


def test_sync_metrics_match_calls_and_exemplars_are_scraped(sync_service: Any) -> None:
    server = sync_service("server", metrics_port=0, metrics_host="127.0.0.1")
    caller = telemetry.Telemetry(make_config("caller"))
    with caller.channel(server.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for kind in KINDS:
            for _ in range(CALLS):
                call_sync(stub, kind, requests_for(kind, []), timeout=10)
    check_counts(server.registry, caller.registry)
    caller.shutdown()

    assert server.tel.metrics_url is not None
    text = scrape(server.tel.metrics_url, openmetrics=True)
    trace_ids = {format(s.context.trace_id, "032x") for s in server.spans.spans()}
    exemplar_lines = [
        line
        for line in text.splitlines()
        if line.startswith("grpc_server_handling_seconds_bucket") and "# {trace_id=" in line
    ]
    assert exemplar_lines, text
    for line in exemplar_lines:
        assert line.split('trace_id="')[1][:32] in trace_ids
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text
    assert "# {trace_id=" not in scrape(server.tel.metrics_url, openmetrics=False)


@pytest.mark.parametrize("build", ["aio_channel", "interceptors"])
async def test_aio_metrics_match_calls(build: str, aio_service: Any) -> None:
    """Through ``tel.aio_channel`` (direct calls) and through ``tel.aio_client_interceptors`` on a
    plain grpc.aio channel (the building block for custom chains): the same counts."""
    server = await aio_service("server")
    caller = telemetry.Telemetry(make_config("caller"))
    if build == "aio_channel":
        channel = caller.aio_channel(server.target)
    else:
        interceptors = caller.aio_client_interceptors(server.target)
        channel = grpc.aio.insecure_channel(server.target, interceptors=interceptors)
    async with channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for kind in KINDS:
            for _ in range(CALLS):
                await call_aio(stub, kind, requests_for(kind, []), timeout=10)
    # Streaming calls finish from a done-callback task: give the loop turns until they land.
    bidi = {"grpc_type": "bidi_stream", "grpc_service": "telemetry.test.Echo", "grpc_method": "Bidi"}
    await wait_until_async(
        lambda: metric_value(caller.registry, "grpc_client_in_flight", **bidi) == 0,
        message="streaming client calls finished",
    )
    check_counts(server.registry, caller.registry)
    caller.shutdown()


@pytest.mark.parametrize("side", ["server", "client"])
def test_method_label_cardinality_is_bounded(side: str) -> None:
    registry = CollectorRegistry()
    metrics = SideMetrics(side, (0.1, 1.0), max_methods=2)
    registry.register(metrics)
    for i in range(5):
        info = MethodInfo(f"/svc.S/M{i}", RpcKind.UNARY, Side(side))
        metrics.stats(info).on_start(CallState(info, 0.0, None, ""))
    sample = registry.get_sample_value
    labels = {"grpc_type": "unary", "grpc_service": "svc.S"}
    assert sample(f"grpc_{side}_started_total", {**labels, "grpc_method": "M0"}) == 1
    assert sample(f"grpc_{side}_started_total", {**labels, "grpc_method": "M1"}) == 1
    other = {"grpc_type": "unary", "grpc_service": "other", "grpc_method": "other"}
    assert sample(f"grpc_{side}_started_total", other) == 3


def test_unreachable_metrics_port_does_not_stop_the_service(sync_service: Any, logs: Any) -> None:
    first = sync_service("first", metrics_port=0, metrics_host="127.0.0.1")
    assert first.tel.metrics_server is not None
    taken = first.tel.metrics_server.port
    second = sync_service("second", metrics_port=taken, metrics_host="127.0.0.1")
    assert second.tel.metrics_server is None
    with grpc.insecure_channel(second.target) as channel:
        call_sync(echo_pb2_grpc.EchoStub(channel), "unary", requests_for("unary", []), timeout=10)
    assert any("metrics endpoint" in str(e.get("event")) for e in logs.events)


def test_registered_methods_are_exported_at_zero_before_any_call(sync_service: Any) -> None:
    server = sync_service("server")  # tel.server() wraps handlers as services register
    labels = {"grpc_service": "telemetry.test.Echo", "grpc_method": "Bidi", "grpc_type": "bidi_stream"}
    assert server.registry.get_sample_value("grpc_server_started_total", labels) == 0
    assert server.registry.get_sample_value("grpc_server_handling_seconds_count", labels) == 0


def test_stream_messages_are_counted_while_the_stream_is_open(sync_service: Any) -> None:
    """Stream messages are counted by each call and read at scrape time: a long stream's messages
    show before it ends, on both sides, and are not counted twice once it has."""
    server = sync_service("server")
    caller = telemetry.Telemetry(make_config("caller"))
    labels = {"grpc_type": "client_stream", "grpc_service": "telemetry.test.Echo",
              "grpc_method": "ClientStream"}  # fmt: skip
    release = threading.Event()

    def requests() -> Iterator[Any]:
        yield from requests_for("client_stream", [])
        release.wait(10)

    def counts() -> tuple[float, float, float]:
        return (
            metric_value(server.registry, "grpc_server_msg_received_total", **labels),
            metric_value(caller.registry, "grpc_client_msg_sent_total", **labels),
            metric_value(server.registry, "grpc_server_in_flight", **labels),
        )

    with caller.channel(server.target) as channel:
        future = echo_pb2_grpc.EchoStub(channel).ClientStream.future(requests(), timeout=10)
        try:
            wait_until(lambda: counts() == (2, 2, 1), message="two messages counted, call open")
        finally:
            release.set()
        future.result()
    wait_until(lambda: counts() == (2, 2, 0), message="the same two once the call ended")
    caller.shutdown()
