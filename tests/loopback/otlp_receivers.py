"""Scripted OTLP receivers for the exporter specification tests, built on the opentelemetry-proto
classes: a grpc server and an ``http.server`` on loopback that record every export and answer as
a script says (OK, or a failure of their protocol, as collectors do under pressure); and the
exporter side: a real :class:`telemetry.Telemetry` handle exporting to one, spans ended through
it, and its export pipeline waited on until the spans are settled.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import grpc
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from helpers import make_config, wait_until
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing import free_port
from telemetry.tracing.export import SpanExportPipeline

Request = trace_service_pb2.ExportTraceServiceRequest
Response = trace_service_pb2.ExportTraceServiceResponse
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# -- scripted receivers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a receiver answers to one export: OK, or a failure of its protocol."""

    http_status: int = 200
    retry_after: str | None = None  # HTTP Retry-After
    grpc_code: grpc.StatusCode = grpc.StatusCode.OK
    retry_delay: float | None = None  # gRPC google.rpc.RetryInfo in grpc-status-details-bin
    response: Any = None  # an ExportTraceServiceResponse for a success (partial_success)

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.grpc_code == grpc.StatusCode.OK


OK = Reply()
Answer = Callable[[int, float], Reply]
"""(index of the export received, seconds since the first one) -> the reply."""


@dataclass
class Hit:
    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]  # lower-case names: HTTP headers or gRPC metadata
    body: bytes  # the HTTP body as it came over the wire (b"" for gRPC)
    request: Any  # the decoded ExportTraceServiceRequest
    accepted: bool

    @property
    def spans(self) -> int:
        return sum(len(s.spans) for r in self.request.resource_spans for s in r.scope_spans)


class Receiver:
    def __init__(self, answer: Answer = lambda n, elapsed: OK) -> None:
        self._answer = answer
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    @property
    def accepted_spans(self) -> int:
        return sum(h.spans for h in self.hits if h.accepted)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, path: str, headers: dict[str, str], body: bytes, request: Any) -> Reply:
        with self._lock:
            now = time.monotonic()
            first = self._hits[0].at if self._hits else now
            reply = self._answer(len(self._hits), now - first)
            self._hits.append(Hit(now, path, headers, body, request, reply.ok))
            return reply


class HttpReceiver(Receiver):
    """OTLP/HTTP on ``http.server``: records every POST (any path), answers by the script."""

    def __init__(self, answer: Answer = lambda n, elapsed: OK) -> None:
        super().__init__(answer)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._record(self.path, headers, body, Request.FromString(raw))
                if reply.http_status == 200:
                    out = (reply.response or Response()).SerializeToString()
                else:
                    out = status_pb2.Status(code=14, message="scripted").SerializeToString()
                self.send_response(reply.http_status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                if reply.retry_after is not None:
                    self.send_header("Retry-After", reply.retry_after)
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcReceiver(Receiver, trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC on a grpc server with the generated TraceService; failures carry a
    ``google.rpc.Status`` (with RetryInfo when scripted) in ``grpc-status-details-bin``."""

    def __init__(self, answer: Answer = lambda n, elapsed: OK) -> None:
        super().__init__(answer)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        headers = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        reply = self._record(EXPORT_PATH, headers, b"", request)
        if reply.grpc_code != grpc.StatusCode.OK:
            if reply.retry_delay is not None:
                status = status_pb2.Status(code=reply.grpc_code.value[0], message="scripted")
                info = error_details_pb2.RetryInfo()
                info.retry_delay.FromNanoseconds(int(reply.retry_delay * 1e9))
                status.details.add().Pack(info)
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(reply.grpc_code, "scripted")
        return reply.response or Response()

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)


def receiver_for(protocol: str, answer: Answer = lambda n, elapsed: OK) -> Receiver:
    return GrpcReceiver(answer) if protocol == "grpc" else HttpReceiver(answer)


# -- the exporter side -----------------------------------------------------------------------------


def start(
    handles: list[telemetry.Telemetry],
    config: telemetry.TelemetryConfig | None = None,
    registry: CollectorRegistry | None = None,
    **overrides: Any,
) -> telemetry.Telemetry:
    if config is None:
        settings: dict[str, Any] = {"traces_exporter": "otlp", "span_schedule_delay": 0.05}
        settings.update(overrides)
        config = make_config("exporter-spec", **settings)
    tel = telemetry.Telemetry(config, registry=registry or CollectorRegistry())
    handles.append(tel)
    return tel


def from_env(env: dict[str, str], **overrides: Any) -> telemetry.TelemetryConfig:
    settings: dict[str, Any] = {"metrics_port": None, "span_schedule_delay": 0.05}
    settings.update(overrides)
    return telemetry.TelemetryConfig.from_env({"OTEL_SERVICE_NAME": "exporter-spec", **env}, **settings)


def pipeline_of(tel: telemetry.Telemetry) -> SpanExportPipeline:
    assert tel.tracing is not None and tel.tracing.pipeline is not None
    return tel.tracing.pipeline


def end_spans(tel: telemetry.Telemetry, count: int, prefix: str = "work") -> None:
    for i in range(count):
        tel.tracer.start_span(f"{prefix}-{i}").end()


def settled(pipeline: SpanExportPipeline, count: int, timeout: float = 15.0) -> None:
    """Wait until ``count`` spans have an outcome: exported, rejected or lost."""
    wait_until(
        lambda: pipeline.exported + pipeline.rejected + pipeline.failed >= count,
        timeout,
        f"{count} spans exported, rejected or lost",
    )
