"""What reaches a collector, decoded with the official opentelemetry-proto classes: every span, RPC
span or handler span, names its instrumentation scope with the package's version; the span limits
hold on both kinds of span and their dropped counts arrive with them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from calls import requests_for
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

import telemetry
from telemetry._version import VERSION
from telemetry.testing._poll import poll


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC endpoint keeping every ExportTraceServiceRequest as received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, str, trace_pb2.Span]]:
        """(scope name, scope version, span) of every span received."""
        with self._lock:
            requests = list(self.requests)
        return [
            (scope_spans.scope.name, scope_spans.scope.version, span)
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"http://127.0.0.1:{port}"
    server.stop(None)


class Busy(echo_pb2_grpc.EchoServicer):
    """Sets 200 attributes and 130 events on its RPC span, and starts a handler span with 200."""

    def __init__(self) -> None:
        self.tel: telemetry.Telemetry | None = None  # set once the service is up

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        assert self.tel is not None
        rpc_span = trace.get_current_span()
        for i in range(200):
            rpc_span.set_attribute(f"k{i}", i)
        for i in range(130):
            rpc_span.add_event(f"e{i}")
        with self.tel.tracer.start_as_current_span("handler.work") as work:
            for i in range(200):
                work.set_attribute(f"k{i}", i)
        return echo_pb2.EchoReply(text=request.text)


def test_scopes_and_dropped_counts_reach_the_collector(
    sync_service: Any, collector: tuple[Collector, str]
) -> None:
    received, endpoint = collector
    servicer = Busy()
    a = sync_service(
        "a", servicer=servicer, traces_exporter="otlp", otlp_endpoint=endpoint, span_schedule_delay=0.05
    )
    servicer.tel = a.tel
    with grpc.insecure_channel(a.target) as channel:
        echo_pb2_grpc.EchoStub(channel).Unary(requests_for("unary", []), timeout=10)
    spans = poll(received.spans, lambda ss: len(ss) >= 2, 10.0, "spans at the collector")

    assert VERSION  # the installed distribution's version, never empty
    assert {(name, version) for name, version, _ in spans} == {("telemetry", VERSION)}
    by_name = {span.name: span for _, _, span in spans}
    rpc, handler = by_name["telemetry.test.Echo/Unary"], by_name["handler.work"]

    # The RPC span: its own 4 (rpc.system.name, rpc.method, the peer's address and port) and the
    # first 124 set; the other 76 and the status code (the span was full) are counted.
    assert len(rpc.attributes) == 128 and rpc.dropped_attributes_count == 77
    assert len(rpc.events) == 128 and rpc.dropped_events_count == 2
    # The handler span (the SDK's): 128 kept, 72 counted.
    assert len(handler.attributes) == 128 and handler.dropped_attributes_count == 72
    assert handler.parent_span_id == rpc.span_id

    # Processors registered on the handle (SpanCapture here) see the same scope and counts.
    captured = {s.name: s for s in a.spans.wait_for(lambda ss: len(ss) >= 2)}
    for span in captured.values():
        assert span.instrumentation_scope is not None
        assert (span.instrumentation_scope.name, span.instrumentation_scope.version) == (
            "telemetry",
            VERSION,
        )
    assert captured["telemetry.test.Echo/Unary"].dropped_attributes == 77
    assert captured["telemetry.test.Echo/Unary"].dropped_events == 2
    assert captured["handler.work"].dropped_attributes == 72
