"""Log records over OTLP (``logs_exporter="otlp"``): the lines a served call writes arrive at a
receiver decoding them with the ``opentelemetry-proto`` classes, with the trace context of the call's
span, severity, body and fields; both protocols; a dead collector costs a call nothing; the
exporter's own warnings are not exported (no loop)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest

import telemetry
from telemetry.logging import pipeline as log_pipeline
from telemetry.logging.otlp_logs import LogExportPipeline
from telemetry.testing import OtlpReceiver, free_port
from telemetry.testing._poll import poll


@pytest.fixture
def logs_to() -> Iterator[Any]:
    """``logs_to(endpoint, protocol)``: ``telemetry.init`` exporting log records there."""
    handles: list[telemetry.Telemetry] = []

    def init(endpoint: str, protocol: str = "grpc") -> telemetry.Telemetry:
        handle = telemetry.init(
            service_name="logs-demo", logs_exporter="otlp", otlp_endpoint=endpoint,
            otlp_protocol=protocol, traces_exporter="none", metrics_port=None,
            log_stream=io.StringIO(), export_timeout=2.0,
        )  # fmt: skip
        handles.append(handle)
        return handle

    yield init
    for handle in handles:
        handle.shutdown(timeout=2.0)
    log_pipeline.export_to(None)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_served_calls_lines_arrive_with_its_trace_context(
    protocol: str, logs_to: Any, sync_service: Any
) -> None:
    with OtlpReceiver() as receiver:
        endpoint = (
            receiver.grpc_endpoint if protocol == "grpc" else f"http://127.0.0.1:{receiver.http_port}"
        )
        logs_to(endpoint, protocol)
        service = sync_service("echo-a")
        with grpc.insecure_channel(service.target) as channel:
            echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="hi"), timeout=10)
        logging.getLogger("some.library").warning("disk %s is full", "/var", extra={"free_bytes": 0})
        assert log_pipeline.flush(5.0)
        logs = receiver.wait_for_logs(lambda found: len({r.body for r in found} & {"handling"}) == 1)
    [handling] = [r for r in logs if r.body == "handling"]
    [span] = service.spans.wait_for(lambda found: len(found) == 1)
    ids = (format(span.context.trace_id, "032x"), format(span.context.span_id, "016x"))
    assert (handling.trace_id, handling.span_id) == ids
    assert (handling.severity_number, handling.severity_text) == (9, "INFO")
    assert handling.attributes["text"] == "hi" and handling.scope == "echo"
    assert handling.resource["service.name"] == "logs-demo"
    assert handling.time_unix_nano <= handling.observed_time_unix_nano
    assert abs(handling.time_unix_nano / 1e9 - time.time()) < 60
    library = next(r for r in receiver.logs if r.scope == "some.library")
    assert (library.body, library.severity_text, library.attributes["free_bytes"]) == (
        "disk /var is full", "WARN", 0,
    )  # fmt: skip
    assert library.trace_id == ""  # no span was current


def test_a_dead_collector_costs_a_logging_call_nothing(logs_to: Any) -> None:
    logs_to(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    log = telemetry.get_logger("app")
    started = time.perf_counter()
    for n in range(2000):
        log.info("line", n=n)
    elapsed = time.perf_counter() - started
    exporter = log_pipeline._exporter
    assert isinstance(exporter, LogExportPipeline)
    poll(lambda: exporter.failed, lambda failed: failed > 0, 15, "the failed export counted")
    assert exporter.exported == 0  # failed, counted (and logged once)
    assert elapsed < 5  # never waited on the collector (a loose bound: the point is no timeout)
