"""The span exporter against the OTLP specification (https://opentelemetry.io/docs/specs/otlp/ and
https://opentelemetry.io/docs/specs/otel/protocol/exporter/), with real receivers built on the
opentelemetry-proto classes: a grpc server and an ``http.server`` on loopback, scripted to answer
as collectors do under pressure (503 with Retry-After, UNAVAILABLE, RESOURCE_EXHAUSTED with and
without RetryInfo, 400, partial success). Nothing of the exporter's network is mocked: spans are
made through a real :class:`telemetry.Telemetry` handle and decoded where they arrive."""

from __future__ import annotations

import gzip
import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from helpers import make_config, metric_value, wait_until
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing import LogCapture, free_port
from telemetry.tracing.export import SpanExportPipeline
from telemetry.tracing.otlp_encoding import SpanTemplate
from telemetry.tracing.rpcspan import SCOPE

Request = trace_service_pb2.ExportTraceServiceRequest
Response = trace_service_pb2.ExportTraceServiceResponse
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
USER_AGENT_PREFIX = "OTel-OTLP-Exporter-Python/"


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


def failing(reply: Reply, *, exports: int = 0, seconds: float = 0.0) -> Answer:
    """``reply`` to the first ``exports`` exports and to every export in the first ``seconds``."""
    return lambda n, elapsed: reply if n < exports or elapsed < seconds else OK


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


class TcpTap:
    """A loopback TCP relay to ``port`` that keeps the bytes the client sent, to read the HTTP/2
    frames of a gRPC call as they crossed the wire."""

    def __init__(self, port: int) -> None:
        self._upstream = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._upstream))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, keep: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    return
                if keep:
                    with self._lock:
                        self.sent += data
                sink.sendall(data)
            except OSError:
                return

    def grpc_message_flags(self) -> list[int]:
        """The compressed-flag byte of each gRPC message the client sent (gRPC over HTTP/2:
        every message is a 1-byte flag, a 4-byte length, then the message, in DATA frames)."""
        with self._lock:
            wire = bytes(self.sent)
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        assert wire.startswith(preface)
        streams: dict[int, bytearray] = {}
        at = len(preface)
        while at + 9 <= len(wire):
            length = int.from_bytes(wire[at : at + 3], "big")
            kind, flags = wire[at + 3], wire[at + 4]
            stream = struct.unpack(">I", wire[at + 5 : at + 9])[0] & 0x7FFFFFFF
            payload = wire[at + 9 : at + 9 + length]
            at += 9 + length
            if kind == 0:  # DATA; PADDED (0x8): a pad length byte first, padding last
                if flags & 0x8:
                    payload = payload[1 : len(payload) - payload[0]]
                streams.setdefault(stream, bytearray()).extend(payload)
        flags_seen = []
        for data in streams.values():
            offset = 0
            while offset + 5 <= len(data):
                flags_seen.append(data[offset])
                offset += 5 + int.from_bytes(data[offset + 1 : offset + 5], "big")
        return flags_seen

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


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


# -- endpoints, headers, user agent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "endpoint", "path"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/prefix", "/prefix/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/prefix/", "/prefix/v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}/custom/spans", "/custom/spans"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}/v1/traces", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}", "/"),
    ],
)
def test_http_endpoint_paths(
    variable: str, endpoint: str, path: str, handles: list[telemetry.Telemetry]
) -> None:
    with HttpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        env[variable] = endpoint.format(base=receiver.base)
        if variable == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  # it wins over the general one
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/general"
        tel = start(handles, from_env(env))
        end_spans(tel, 3)
        assert tel.force_flush(10)
        assert [(h.path, h.spans) for h in receiver.hits] == [(path, 3)]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_signal_specific_headers_and_the_user_agent_reach_the_receiver(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    with receiver_for(protocol) as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-general=1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=acme%20corp",
        }
        tel = start(handles, from_env(env))
        end_spans(tel, 1)
        assert tel.force_flush(10)
        (hit,) = receiver.hits
    assert hit.headers["x-tenant"] == "acme corp" and "x-general" not in hit.headers
    assert hit.headers["user-agent"].startswith(USER_AGENT_PREFIX), hit.headers["user-agent"]


# -- retries ---------------------------------------------------------------------------------------


def test_503_with_retry_after_for_one_second_then_200_loses_no_span(
    handles: list[telemetry.Telemetry],
) -> None:
    refusing = Reply(http_status=503, retry_after="1")
    with HttpReceiver(failing(refusing, seconds=1.0)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf")
        pipeline = pipeline_of(tel)
        end_spans(tel, 20, "before")
        wait_until(lambda: len(receiver.hits) >= 1, 10, "the first (refused) export")
        # While the export thread waits out Retry-After, RPCs and handlers keep ending spans:
        # they only append to the bounded queue.
        end_spans(tel, 20, "during")
        ended_at = time.monotonic()
        settled(pipeline, 40)
        hits = receiver.hits
    lost = 40 - receiver.accepted_spans
    print(f"\n503+Retry-After:1 for 1 s: {lost} of 40 spans lost, {len(hits)} exports, "
          f"retry {hits[1].at - hits[0].at:.2f} s after the 503")  # fmt: skip
    assert lost == 0 and pipeline.failed == 0 and pipeline.dropped == 0
    assert pipeline.exported == 40 and pipeline.retries >= 1
    assert not hits[0].accepted and hits[1].at - hits[0].at >= 0.95  # Retry-After honoured
    assert ended_at < hits[1].at  # ending spans never waited for the retry


def test_spans_keep_queueing_while_a_retry_waits_and_overflow_is_counted(
    handles: list[telemetry.Telemetry],
) -> None:
    with HttpReceiver(failing(Reply(http_status=503, retry_after="1"), exports=1)) as receiver:
        tel = start(
            handles,
            otlp_endpoint=receiver.base,
            otlp_protocol="http/protobuf",
            span_queue_size=30,
            span_batch_size=10,
        )
        pipeline = pipeline_of(tel)
        end_spans(tel, 10, "first")
        wait_until(lambda: len(receiver.hits) == 1, 10, "the refused export")
        end_spans(tel, 40, "meanwhile")  # the queue holds 30 of them
        assert pipeline.dropped == 10
        settled(pipeline, 40)
    assert receiver.accepted_spans == pipeline.exported == 40 and pipeline.failed == 0


def test_grpc_unavailable_then_ok_loses_no_span(handles: list[telemetry.Telemetry]) -> None:
    unavailable = Reply(grpc_code=grpc.StatusCode.UNAVAILABLE)
    with GrpcReceiver(failing(unavailable, exports=2)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base)
        pipeline = pipeline_of(tel)
        end_spans(tel, 20)
        settled(pipeline, 20)
        hits = receiver.hits
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    print(f"\nUNAVAILABLE x2 then OK: {20 - receiver.accepted_spans} of 20 lost, backoff gaps "
          + ", ".join(f"{g:.2f} s" for g in gaps))  # fmt: skip
    assert receiver.accepted_spans == pipeline.exported == 20 and pipeline.failed == 0
    assert [h.accepted for h in hits] == [False, False, True] and pipeline.retries == 2
    # Exponential backoff with jitter: 0.5 s then 1 s, each +-20%.
    assert gaps[0] >= 0.39 and gaps[1] >= 0.79


@pytest.mark.parametrize("retry_delay", [1.2, None], ids=["with-RetryInfo", "without-RetryInfo"])
def test_resource_exhausted_is_retried_only_with_retry_info(
    retry_delay: float | None, handles: list[telemetry.Telemetry]
) -> None:
    exhausted = Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=retry_delay)
    with GrpcReceiver(failing(exhausted, exports=1)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base)
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        hits = receiver.hits
    if retry_delay is None:  # the server cannot recover: dropped at once, counted
        assert len(hits) == 1 and pipeline.failed == 10 and pipeline.retries == 0
    else:  # retried after the server's delay (the client's own backoff would be 0.4-0.6 s)
        assert [h.accepted for h in hits] == [False, True] and pipeline.failed == 0
        assert hits[1].at - hits[0].at >= retry_delay


def test_a_non_retryable_http_400_drops_the_batch_at_once(
    handles: list[telemetry.Telemetry], logs: LogCapture
) -> None:
    with HttpReceiver(lambda n, elapsed: Reply(http_status=400)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf")
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        lost_at = time.monotonic()
        hits = receiver.hits
    assert len(hits) == 1 and pipeline.failed == 10 and pipeline.retries == 0
    assert lost_at - hits[0].at < 1.0
    (line,) = [e for e in logs.events if e.get("logger") == "telemetry.export"]
    assert "HTTP 400: scripted" in line["event"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_retries_never_exceed_the_export_timeout(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    refusing = Reply(http_status=503, grpc_code=grpc.StatusCode.UNAVAILABLE)  # no delay named
    timeout = 1.5
    with receiver_for(protocol, lambda n, elapsed: refusing) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol=protocol, export_timeout=timeout)
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        given_up_at = time.monotonic()
        hits = receiver.hits
    print(f"\n{protocol} always refusing, export_timeout {timeout} s: {len(hits)} attempts, "
          f"given up {given_up_at - hits[0].at:.2f} s after the first")  # fmt: skip
    assert pipeline.failed == 10 and len(hits) >= 2 and pipeline.retries == len(hits) - 1
    assert hits[-1].at - hits[0].at < timeout
    assert given_up_at - hits[0].at < timeout + 0.25  # poll interval and scheduling slack


def test_a_retry_after_beyond_the_export_timeout_gives_up_at_once(
    handles: list[telemetry.Telemetry],
) -> None:
    with HttpReceiver(lambda n, elapsed: Reply(http_status=429, retry_after="30")) as receiver:
        tel = start(
            handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf", export_timeout=3
        )
        pipeline = pipeline_of(tel)
        end_spans(tel, 5)
        settled(pipeline, 5)
        given_up_at = time.monotonic()
        hits = receiver.hits
    assert len(hits) == 1 and pipeline.failed == 5 and given_up_at - hits[0].at < 1.0


# -- compression ----------------------------------------------------------------------------------


def test_http_gzip_compresses_the_body(handles: list[telemetry.Telemetry]) -> None:
    with HttpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base,
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
        }
        tel = start(handles, from_env(env))
        end_spans(tel, 50)
        assert tel.force_flush(10)
        hits = receiver.hits
    assert sum(h.spans for h in hits) == 50
    for hit in hits:
        assert hit.headers["content-encoding"] == "gzip"
        raw = gzip.decompress(hit.body)  # gzip on the wire, an OTLP request inside
        assert Request.FromString(raw) == hit.request and len(hit.body) < len(raw)


@pytest.mark.parametrize(("compression", "flag"), [("gzip", 1), ("none", 0)])
def test_grpc_gzip_compresses_the_message_on_the_wire(
    compression: str, flag: int, handles: list[telemetry.Telemetry]
) -> None:
    with GrpcReceiver() as receiver:
        tap = TcpTap(receiver.port)
        try:
            tel = start(
                handles, otlp_endpoint=f"http://127.0.0.1:{tap.port}", otlp_compression=compression
            )
            end_spans(tel, 50)
            assert tel.force_flush(10)
            assert receiver.accepted_spans == 50  # decompressed intact by the server
            # The one Export message crossed the wire with the gRPC compressed flag set (gzip).
            assert tap.grpc_message_flags() == [flag] * len(receiver.hits)
        finally:
            tap.close()


# -- partial success, one ResourceSpans -----------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_is_counted_and_logged_at_most_once_a_minute(
    protocol: str, handles: list[telemetry.Telemetry], logs: LogCapture
) -> None:
    partial = Response()
    partial.partial_success.rejected_spans = 2
    partial.partial_success.error_message = "span too large"
    registry = CollectorRegistry()
    with receiver_for(protocol, lambda n, elapsed: Reply(response=partial)) as receiver:
        tel = start(handles, registry=registry, otlp_endpoint=receiver.base, otlp_protocol=protocol)
        pipeline = pipeline_of(tel)
        end_spans(tel, 5, "first")
        settled(pipeline, 5)
        end_spans(tel, 5, "second")
        settled(pipeline, 10)
        hits = receiver.hits
    assert len(hits) == 2 and pipeline.retries == 0  # a partial success is never retried
    assert pipeline.rejected == 4 and pipeline.exported == 6 and pipeline.failed == 0
    assert metric_value(registry, "telemetry_spans_export_rejected_total") == 4
    (line,) = [e for e in logs.events if e.get("logger") == "telemetry.export"]
    assert line["event"] == "collector rejected 2 of 5 spans (2 so far): span too large"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_rpc_spans_and_handler_spans_share_one_resource_spans(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    with receiver_for(protocol) as receiver:
        tel = start(
            handles,
            otlp_endpoint=receiver.base,
            otlp_protocol=protocol,
            span_schedule_delay=30.0,  # both spans wait for the flush: one batch
        )
        assert tel.tracing is not None
        template = SpanTemplate("telemetry.test.Echo/Unary", "SERVER", {"rpc.system": "grpc"})
        rpc = tel.tracing.rpc_tracer.start(template, None, None, trace.SpanKind.SERVER)
        library = tel.tracing.provider.get_tracer("shop.db", "2.0")
        same_scope = tel.tracing.provider.get_tracer(SCOPE.name, SCOPE.version)
        with trace.use_span(rpc), tel.tracer.start_as_current_span("handler work"):
            library.start_span("db.query").end()
            same_scope.start_span("same scope").end()
        rpc.end()
        assert tel.force_flush(10)
        (hit,) = receiver.hits
    (resource_spans,) = hit.request.resource_spans  # one ResourceSpans, not one per encoder
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "exporter-spec"
    spans = {
        (s.scope.name, s.scope.version): sorted(span.name for span in s.spans)
        for s in resource_spans.scope_spans
    }
    assert len(spans) == len(resource_spans.scope_spans)  # one ScopeSpans per scope
    scope_of = {name: scope for scope, names in spans.items() for name in names}
    assert set(scope_of) == {"telemetry.test.Echo/Unary", "handler work", "db.query", "same scope"}
    # An SDK span of the RPC spans' own scope joins their ScopeSpans.
    assert {"same scope", "telemetry.test.Echo/Unary"} <= set(spans[SCOPE.name, SCOPE.version])
    assert scope_of["db.query"] == ("shop.db", "2.0")
    assert scope_of["handler work"][0] == "telemetry"  # the handle's tracer
    by_name = {span.name: span for s in resource_spans.scope_spans for span in s.spans}
    assert by_name["handler work"].parent_span_id == by_name["telemetry.test.Echo/Unary"].span_id
    assert by_name["db.query"].parent_span_id == by_name["handler work"].span_id
