"""The span exporter over TLS and mTLS, as the OTLP exporter specification's Certificate File,
Client Key File and Client Certificate File options say
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/), against real receivers built on the
opentelemetry-proto classes: a grpc server with TLS credentials and an ``http.server`` behind
``ssl``, with certificates made by ``openssl`` for 127.0.0.1."""

from __future__ import annotations

import ssl
import subprocess
import threading
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import make_config
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.config import ConfigError
from telemetry.testing import free_port
from telemetry.testing._poll import poll

Request = trace_service_pb2.ExportTraceServiceRequest


@dataclass(frozen=True)
class Pair:
    key: Path
    cert: Path


def self_signed(folder: Path, name: str) -> Pair:
    """A key and a self-signed certificate for 127.0.0.1 (it is its own CA)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return Pair(key, cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair]:
    folder = tmp_path_factory.mktemp("pki")
    return {name: self_signed(folder, name) for name in ("server", "client", "stranger")}


class Spans:
    """Counts the spans a receiver accepted."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, request: Any) -> None:
        with self._lock:
            self.count += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


class GrpcTlsReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, server_pair: Pair, client_ca: Path | None) -> None:
        self.spans = Spans()
        self.port = free_port()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        credentials = grpc.ssl_server_credentials(
            [(server_pair.key.read_bytes(), server_pair.cert.read_bytes())],
            root_certificates=None if client_ca is None else client_ca.read_bytes(),
            require_client_auth=client_ca is not None,
        )
        self._server.add_secure_port(f"127.0.0.1:{self.port}", credentials)
        self._server.start()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        self.spans.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def stop(self) -> None:
        self._server.stop(grace=None)


class HttpsReceiver:
    def __init__(self, server_pair: Pair, client_ca: Path | None) -> None:
        self.spans = Spans()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                spans.add(Request.FromString(body))
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_pair.cert, server_pair.key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(client_ca)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def export_one(handles: list[telemetry.Telemetry], **settings: Any) -> telemetry.Telemetry:
    config = make_config("tls", traces_exporter="otlp", span_schedule_delay=0.05, export_timeout=2.0,
                         **settings)  # fmt: skip
    tel = telemetry.Telemetry(config, registry=CollectorRegistry())
    handles.append(tel)
    with tel.tracer.start_as_current_span("work"):
        pass
    return tel


def receiver(protocol: str, pki: dict[str, Pair], mtls: bool) -> Any:
    client_ca = pki["client"].cert if mtls else None
    if protocol == "grpc":
        return GrpcTlsReceiver(pki["server"], client_ca)
    return HttpsReceiver(pki["server"], client_ca)


def endpoint(protocol: str, port: int) -> dict[str, Any]:
    url = f"https://127.0.0.1:{port}"
    if protocol == "grpc":
        return {"otlp_protocol": "grpc", "otlp_endpoint": url}
    return {"otlp_protocol": "http/protobuf", "otlp_endpoint": url}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_tls_with_the_certificate_file_verifies_the_collector(
    protocol: str, pki: dict[str, Pair], handles: list[telemetry.Telemetry]
) -> None:
    collector = receiver(protocol, pki, mtls=False)
    try:
        export_one(
            handles, **endpoint(protocol, collector.port), otlp_certificate=str(pki["server"].cert)
        )
        poll(lambda: collector.spans.count, lambda n: n == 1, 10, "the span over TLS")
    finally:
        collector.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_the_certificate_file_does_not_vouch_for_gets_nothing(
    protocol: str, pki: dict[str, Pair], handles: list[telemetry.Telemetry]
) -> None:
    collector = receiver(protocol, pki, mtls=False)
    try:
        tel = export_one(
            handles, **endpoint(protocol, collector.port), otlp_certificate=str(pki["stranger"].cert)
        )
        assert tel.tracing is not None and tel.tracing.pipeline is not None
        pipeline = tel.tracing.pipeline
        poll(lambda: pipeline.failed, lambda n: n == 1, 10, "the export refused by verification")
        assert collector.spans.count == 0
    finally:
        collector.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_mtls_needs_the_client_key_and_certificate(
    protocol: str, pki: dict[str, Pair], handles: list[telemetry.Telemetry]
) -> None:
    collector = receiver(protocol, pki, mtls=True)
    try:
        anonymous = export_one(
            handles, **endpoint(protocol, collector.port), otlp_certificate=str(pki["server"].cert)
        )
        assert anonymous.tracing is not None and anonymous.tracing.pipeline is not None
        refused = anonymous.tracing.pipeline
        poll(lambda: refused.failed, lambda n: n == 1, 10, "the export without a client certificate")
        export_one(
            handles, **endpoint(protocol, collector.port), otlp_certificate=str(pki["server"].cert),
            otlp_client_key=str(pki["client"].key), otlp_client_certificate=str(pki["client"].cert),
        )  # fmt: skip
        poll(lambda: collector.spans.count, lambda n: n == 1, 10, "the span over mTLS")
    finally:
        collector.stop()


def test_the_files_come_from_the_standard_variables_signal_first(pki: dict[str, Pair]) -> None:
    config = telemetry.TelemetryConfig.from_env({
        "OTEL_SERVICE_NAME": "tls",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/general/ca.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(pki["server"].cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(pki["client"].key),
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(pki["client"].cert),
    })  # fmt: skip
    assert config.otlp_certificate == str(pki["server"].cert)
    assert config.otlp_client_key == str(pki["client"].key)
    assert config.otlp_client_certificate == str(pki["client"].cert)


def test_a_missing_file_or_half_a_client_pair_fails_at_start_naming_the_setting(
    tmp_path: Path, pki: dict[str, Pair]
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"^otlp_certificate: cannot read '.*nope.pem'"):
        telemetry.Telemetry(make_config("tls", traces_exporter="otlp", otlp_certificate=str(missing)))
    with pytest.raises(ConfigError, match=r"^otlp_client_key, otlp_client_certificate: give both"):
        make_config("tls", otlp_client_key=str(pki["client"].key))
