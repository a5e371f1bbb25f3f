"""Logging: a blocked stdout never stalls handlers; stdlib records are correlated; sensitive keys are
redacted everywhere; payloads are off by default; health checks stay out of traces and access logs."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from calls import INCOMING, TRACE_ID, call_sync, requests_for
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from helpers import metric_value

import telemetry
from telemetry.logging import pipeline


class BlockedStream(io.TextIOBase):
    """A stdout whose writes hang until released, like a full pipe nobody reads."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.release.wait()
        self.lines.extend(text.splitlines())
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def reconfigure() -> Iterator[Any]:
    """Reconfigure process logging for one test, then restore the suite's configuration."""
    yield pipeline.configure
    pipeline.configure(service_name="tests", level="info", stream=io.StringIO())


def test_blocked_stdout_does_not_stall_handlers(sync_service: Any, reconfigure: Any, logs: Any) -> None:
    stream = BlockedStream()
    reconfigure(service_name="tests", stream=stream, queue_size=20)
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(100):  # each call logs two lines; the writer is stuck on the first
            call_sync(stub, "unary", requests_for("unary", []), timeout=5)
    writer = pipeline.PIPELINE.writer
    assert writer is not None and writer.dropped > 0
    stream.release.set()
    assert pipeline.flush(timeout=10)
    # Nothing is lost silently: every line emitted was either written or counted as dropped.
    assert len(stream.lines) + writer.dropped == len(logs.events)
    assert len(stream.lines) <= 2 * 20  # a full queue plus the batch the writer held when it blocked
    assert json.loads(stream.lines[0])["service"] in ("a", "tests")


def test_json_lines_written_to_the_stream(sync_service: Any, reconfigure: Any) -> None:
    # With the writer as the only sink, access lines are built on the writer thread: the same
    # fields, ordering and redaction as lines built on the request path.
    stream = io.StringIO()
    reconfigure(service_name="tests", stream=stream)
    a = sync_service("a", log_metadata=True)
    with grpc.insecure_channel(a.target) as channel:
        call_sync(
            echo_pb2_grpc.EchoStub(channel),
            "unary",
            requests_for("unary", []),
            metadata=(*INCOMING, ("authorization", "Bearer s3cr3t")),
            timeout=5,
        )
    assert pipeline.flush(timeout=5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["event"] == "finished call"]
    assert len(access) == 1
    assert list(access[0])[:6] == ["timestamp", "level", "service", "event", "trace_id", "span_id"]
    assert access[0]["trace_id"] == TRACE_ID and len(access[0]["span_id"]) == 16
    assert access[0]["timestamp"].endswith("+00:00")
    assert access[0]["echo_text"] == "r0"  # added by the handler during the call
    assert access[0]["grpc.metadata"]["authorization"] == "[REDACTED]"
    assert "s3cr3t" not in stream.getvalue()


def test_stdlib_logging_is_correlated(sync_service: Any, logs: Any) -> None:
    a = sync_service("a")
    assert a.tel.tracer is not None
    with a.tel.tracer.start_as_current_span("work") as span:
        logging.getLogger("some.library").warning("from stdlib %s", "logging")
    trace_id = format(span.get_span_context().trace_id, "032x")
    (event,) = logs.matching(event="from stdlib logging")
    assert event["trace_id"] == trace_id and event["logger"] == "some.library"
    assert event["level"] == "warning" and event["service"] == "tests"


def test_sensitive_keys_are_redacted_everywhere(sync_service: Any, logs: Any) -> None:
    a = sync_service("a", log_metadata=True)
    secret = (("authorization", "Bearer s3cr3t"), ("cookie", "sid=1"), ("x-tenant", "acme"))
    with grpc.insecure_channel(a.target) as channel:
        call_sync(
            echo_pb2_grpc.EchoStub(channel),
            "unary",
            requests_for("unary", []),
            metadata=secret,
            timeout=5,
        )
    telemetry.get_logger("app").info("login", password="hunter2", user="bob")
    (access,) = logs.matching(event="finished call")
    assert access["grpc.metadata"]["authorization"] == "[REDACTED]"
    assert access["grpc.metadata"]["cookie"] == "[REDACTED]"
    assert access["grpc.metadata"]["x-tenant"] == "acme"
    (login,) = logs.matching(event="login")
    assert login["password"] == "[REDACTED]" and login["user"] == "bob"
    assert "s3cr3t" not in repr(logs.events) and "hunter2" not in repr(logs.events)


def test_payloads_are_off_by_default_and_truncated_when_on(sync_service: Any, logs: Any) -> None:
    quiet = sync_service("quiet")
    loud = sync_service("loud", log_payloads=True, payload_max_chars=20)
    for service in (quiet, loud):
        with grpc.insecure_channel(service.target) as channel:
            echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="x" * 100), timeout=5)
    (quiet_line,) = logs.matching(event="finished call", service="quiet")
    (loud_line,) = logs.matching(event="finished call", service="loud")
    assert "grpc.request" not in quiet_line and "grpc.response" not in quiet_line
    assert loud_line["grpc.request"].endswith("...(truncated)")
    assert len(loud_line["grpc.request"]) == 20 + len("...(truncated)")


def test_health_checks_are_not_traced_or_access_logged(sync_service: Any, logs: Any) -> None:
    a = sync_service("a")
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), a.server)
    with grpc.insecure_channel(a.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert a.spans.spans() == ()
    assert logs.matching(event="finished call") == []
    labels = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
    assert metric_value(a.registry, "grpc_server_handled_total", grpc_code="OK", **labels) == 1


def test_add_log_fields_outside_a_call_is_a_no_op() -> None:
    assert telemetry.add_log_fields(x=1) is False
