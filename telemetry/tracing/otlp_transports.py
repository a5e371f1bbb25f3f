"""OTLP transports: each sends one serialized ExportTraceServiceRequest and returns the serialized
response, following the OTLP exporter specification's options (Endpoint, Insecure, Headers,
Compression, Certificate File, Client Key File, Client Certificate File, User Agent;
https://opentelemetry.io/docs/specs/otel/protocol/exporter/). A failure is raised as an
:class:`~telemetry.tracing.otlp_failures.ExportError` classified by the OTLP rules; the export
pipeline (:mod:`telemetry.tracing.export`) retries or drops the batch.
"""

from __future__ import annotations

import functools
import gzip
import http.client
import re
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import urlsplit

import grpc

from telemetry._version import VERSION
from telemetry.tracing.otlp_decoding import decode_bytes, json_line
from telemetry.tracing.otlp_failures import ExportError, grpc_failure, http_failure

TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

USER_AGENT = f"OTel-OTLP-Exporter-Python/{VERSION} telemetry/{VERSION}"
"""Exporter spec "User Agent": names the exporter, its language and version (both transports)."""


class Transport(Protocol):
    """Sends one serialized Export*ServiceRequest; returns the serialized response (None when
    there is none) or raises :class:`ExportError` (anything else is not retried)."""

    def send(self, payload: bytes, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


@dataclass(frozen=True)
class TlsFiles:
    """The PEM contents of the exporter spec's Certificate File (trusted CAs, instead of the
    system's), Client Key File and Client Certificate File (mTLS); None: not given."""

    certificate: bytes | None = None
    client_key: bytes | None = None
    client_certificate: bytes | None = None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """For OTLP/HTTP: the system CAs or ``certificate``, and the client pair if given. Built
        once: start-up checks it, the HTTP transport then uses the same context."""
        cadata = None
        if self.certificate is not None:
            # ssl takes ASCII PEM only; CA bundles carry non-ASCII comments between the blocks.
            blocks = _PEM_CERTIFICATE.findall(self.certificate)
            cadata = b"\n".join(blocks).decode("ascii") if blocks else ""
        context = ssl.create_default_context(cadata=cadata)
        if self.client_key is not None and self.client_certificate is not None:
            # load_cert_chain reads files only: hand it private temporary copies.
            with tempfile.TemporaryDirectory(prefix="otlp-tls-") as folder:
                key, certificate = Path(folder, "key.pem"), Path(folder, "cert.pem")
                key.write_bytes(self.client_key)
                certificate.write_bytes(self.client_certificate)
                # An encrypted key would make OpenSSL prompt on the terminal: fail instead.
                context.load_cert_chain(certificate, key, password=b"")
        return context


class GrpcTransport:
    """OTLP/gRPC with raw bytes: no message objects on either side.

    ``endpoint``: an ``http``/``https`` URL (the scheme decides TLS and takes precedence over
    ``insecure``; any path is ignored) or any other gRPC target, for which ``insecure`` decides
    (default: TLS), as the exporter spec's Endpoint and Insecure options say. ``method``: the
    signal's Export method (spans by default, or :data:`LOGS_METHOD`)."""

    def __init__(
        self,
        endpoint: str,
        insecure: bool | None,
        headers: Mapping[str, str],
        *,
        compression: str = "none",
        user_agent: str = USER_AGENT,
        tls: TlsFiles = TlsFiles(),
        method: str = TRACES_METHOD,
    ) -> None:
        url = urlsplit(endpoint)
        if url.scheme in ("http", "https") and "://" in endpoint:
            target, secure = url.netloc, url.scheme == "https"
        else:
            target, secure = endpoint, not insecure
        options = [("grpc.primary_user_agent", user_agent)]
        gzip_on = grpc.Compression.Gzip if compression == "gzip" else None
        if secure:
            credentials = grpc.ssl_channel_credentials(
                tls.certificate, tls.client_key, tls.client_certificate
            )
            self._channel = grpc.secure_channel(target, credentials, options, gzip_on)
        else:
            self._channel = grpc.insecure_channel(target, options, gzip_on)
        self._export: grpc.UnaryUnaryMultiCallable[bytes, bytes] = self._channel.unary_unary(method)
        self._metadata = tuple((k.lower(), v) for k, v in headers.items()) or None

    def send(self, payload: bytes, timeout: float) -> bytes:
        try:
            reply: bytes = self._export(payload, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise grpc_failure(error) from None
        return reply

    def close(self) -> None:
        self._channel.close()


class HttpTransport:
    """OTLP/HTTP with binary protobuf bodies, POSTed to ``url`` as it is (build it with
    :func:`telemetry.tracing.setup.otlp_http_url`); ``compression="gzip"``: a gzip body with
    ``Content-Encoding: gzip``."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        compression: str = "none",
        user_agent: str = USER_AGENT,
        tls: TlsFiles = TlsFiles(),
    ) -> None:
        self._url = url
        self._context = tls.ssl_context if url.startswith("https:") else None
        self._gzip = compression == "gzip"
        # The user's headers last: their names win (urllib folds the case of header names).
        self._headers = {"Content-Type": "application/x-protobuf", "User-Agent": user_agent}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._headers.update(headers)

    def send(self, payload: bytes, timeout: float) -> bytes:
        body = gzip.compress(payload, compresslevel=6) if self._gzip else payload
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as reply:
                data: bytes = reply.read()
                encoding = reply.headers.get("Content-Encoding", "")
        except urllib.error.HTTPError as error:
            try:
                error_body = error.read()
            except (OSError, http.client.HTTPException):
                error_body = b""
            raise http_failure(error.code, error.headers.get("Retry-After"), error_body) from None
        except (OSError, http.client.HTTPException) as error:
            # Spec: a server that disconnects without a status is retried; a TLS failure is not
            # going to pass on the next attempt.
            reason = getattr(error, "reason", error)
            retryable = not isinstance(reason, ssl.SSLError)
            raise ExportError(f"{type(error).__name__}: {error}", retryable=retryable) from None
        return gzip.decompress(data) if encoding.lower() == "gzip" else data

    def close(self) -> None:
        pass


class StreamTransport:
    """JSON lines on a stream (the ``console`` exporter, or a file when no collector runs): one per
    span, or with ``logs`` one OTLP JSON ``LogRecord`` per log record."""

    def __init__(self, stream: TextIO, *, logs: bool = False) -> None:
        self._stream = stream
        self._lines = _log_lines if logs else _span_lines
        self._lock = threading.Lock()

    def send(self, payload: bytes, timeout: float) -> None:
        lines = self._lines(payload)
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()

    def close(self) -> None:
        pass


def _span_lines(payload: bytes) -> str:
    return "".join(json_line(span) for span in decode_bytes(payload))


def _log_lines(payload: bytes) -> str:
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest.FromString(payload)
    return "".join(
        MessageToJson(record, indent=None) + "\n"
        for resource in request.resource_logs
        for scope in resource.scope_logs
        for record in scope.log_records
    )
