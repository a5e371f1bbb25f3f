"""The span export pipeline: bounded queue -> export thread -> OTLP bytes -> transport, following the
OTLP exporter specification (https://opentelemetry.io/docs/specs/otel/protocol/exporter/) and OTLP
itself (https://opentelemetry.io/docs/specs/otlp/).

Callers only append to a bounded deque; a full queue drops the span and counts it (``dropped``), so
a slow or dead collector never blocks or slows an RPC. The export thread encodes a batch as one
ExportTraceServiceRequest with ONE ResourceSpans for the process's resource (the OTLP data model):
RPC spans through the direct encoder (the RPC scope's ScopeSpans), spans made through the SDK tracer
through the SDK's encoder (a ScopeSpans per instrumentation scope), merged.

Retries (OTLP "Failures" and "Retryable Response Codes"; exporter spec "Retry"): a transient failure
(gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and
RESOURCE_EXHAUSTED only when the status carries ``google.rpc.RetryInfo``; HTTP 429, 502, 503, 504,
or a connection lost without a status) is retried after the server's delay (``RetryInfo.retry_delay``,
``Retry-After``) or else an exponential backoff with jitter, for as long as the whole export of the
batch stays within ``export_timeout``; any other failure drops the batch at once. Spans lost either
way are counted (``failed``) and logged at most once a minute. Retries wait on the export thread
only: meanwhile RPCs keep appending to the bounded queue. A response's ``partial_success`` counts the
spans the collector rejected (``rejected``; never retried, as the spec says) and is logged at most
once a minute too.
"""

from __future__ import annotations

import email.utils
import functools
import gzip
import http.client
import logging
import math
import random
import re
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from telemetry._version import VERSION
from telemetry.batch_queue import BatchQueue
from telemetry.governance._types import RandomSource
from telemetry.governance.retry import RetryPolicy
from telemetry.tracing.otlp_decoding import decode_bytes, json_line
from telemetry.tracing.otlp_encoding import (
    encode_resource_header,
    encode_resource_spans,
    encode_scope,
    encode_scope_spans,
    encode_span,
    field_bytes,
    key_values,
)
from telemetry.tracing.rpcspan import SCOPE

_log = logging.getLogger("telemetry.export")
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_LOG_INTERVAL = 60.0  # seconds between two warnings of one kind: a dead collector must not flood logs
_MAX_MESSAGE = 300  # characters of a server's error message kept in a log line


USER_AGENT = f"OTel-OTLP-Exporter-Python/{VERSION} telemetry/{VERSION}"
"""Exporter spec "User Agent": names the exporter, its language and version (both transports)."""

RETRYABLE_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
"""OTLP/gRPC retryable codes; RESOURCE_EXHAUSTED too, but only with RetryInfo in the status."""
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
"""OTLP/HTTP: these are retried; every other 4xx or 5xx MUST NOT be."""

DEFAULT_RETRY = RetryPolicy(
    max_attempts=10, initial_backoff=0.5, max_backoff=5.0, multiplier=2.0, jitter=0.2
)
"""Backoff when the server names no delay: 0.5 s doubling to 5 s, +-20% jitter, at most 10
attempts; the export timeout bounds the whole of it first in practice."""


class ExportError(Exception):
    """One failed export attempt, classified by the OTLP rules: ``retryable``, and ``delay``, the
    seconds the server asked to wait (RetryInfo, Retry-After) or None for the client's backoff."""

    def __init__(self, message: str, *, retryable: bool, delay: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.delay = delay


class Transport(Protocol):
    """Sends one serialized ExportTraceServiceRequest; returns the serialized response (None when
    there is none) or raises :class:`ExportError` (anything else is not retried)."""

    def send(self, payload: bytes, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


# -- failure classification (pure) -------------------------------------------------------------


def retry_info_delay(trailing_metadata: Iterable[tuple[str, Any]] | None) -> float | None:
    """The ``google.rpc.RetryInfo.retry_delay`` in the ``grpc-status-details-bin`` trailer (a
    serialized ``google.rpc.Status``), in seconds: None without RetryInfo, 0.0 when it names none."""
    for key, value in trailing_metadata or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    delay = info.retry_delay
                    return max(0.0, float(delay.seconds + delay.nanos / 1e9))
        except (DecodeError, ValueError):
            return None
    return None


def grpc_failure(error: grpc.RpcError) -> ExportError:
    """Classify a failed OTLP/gRPC call (OTLP "OTLP/gRPC Response" and "Throttling")."""
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    details = details_of() if callable(details_of) else None
    trailers_of = getattr(error, "trailing_metadata", None)
    delay = retry_info_delay(trailers_of() if callable(trailers_of) else None)
    retryable = code in RETRYABLE_GRPC_CODES or (
        code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
    )
    message = f"gRPC {code.name}: {details or ''}"[:_MAX_MESSAGE]
    return ExportError(message, retryable=retryable, delay=(delay or None) if retryable else None)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 section 10.2.3): delta-seconds or an
    HTTP-date (``now``: the current epoch time, for tests). None when absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def http_failure(status: int, retry_after: str | None, body: bytes) -> ExportError:
    """Classify a failed OTLP/HTTP response (OTLP "Failures" and "Throttling"); the body, when a
    serialized ``google.rpc.Status``, gives the message."""
    message = f"HTTP {status}"
    try:
        detail = str(status_pb2.Status.FromString(body).message) if body else ""
    except (DecodeError, ValueError):
        detail = ""
    if detail:
        message = f"{message}: {detail}"[:_MAX_MESSAGE]
    retryable = status in RETRYABLE_HTTP_STATUSES
    delay = parse_retry_after(retry_after) if retryable else None
    return ExportError(message, retryable=retryable, delay=delay)


def partial_success(reply: bytes) -> tuple[int, str]:
    """``(rejected_spans, error_message)`` of a serialized ExportTraceServiceResponse."""
    try:
        response = ExportTraceServiceResponse.FromString(reply)
    except (DecodeError, ValueError):
        return 0, ""
    if not response.HasField("partial_success"):
        return 0, ""
    return response.partial_success.rejected_spans, response.partial_success.error_message


# -- transports ----------------------------------------------------------------------------------


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
    (default: TLS), as the exporter spec's Endpoint and Insecure options say."""

    def __init__(
        self,
        endpoint: str,
        insecure: bool | None,
        headers: Mapping[str, str],
        *,
        compression: str = "none",
        user_agent: str = USER_AGENT,
        tls: TlsFiles = TlsFiles(),
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
        self._export = self._channel.unary_unary(_EXPORT_METHOD)
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
    """Spans as JSON lines on a stream (``console`` exporter, or a file when no collector runs)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, payload: bytes, timeout: float) -> None:
        lines = "".join(json_line(span) for span in decode_bytes(payload))
        with self._lock:
            self._stream.write(lines)
            self._stream.flush()

    def close(self) -> None:
        pass


# -- the pipeline -------------------------------------------------------------------------------


class SpanExportPipeline:
    """Counters (read from any thread; written by the export thread): ``exported`` (spans the
    collector accepted), ``failed`` (lost with their batch), ``rejected`` (refused in a partial
    success), ``retries`` (attempts after the first), ``dropped`` (queue full)."""

    def __init__(
        self,
        transport: Transport,
        resource_attributes: Mapping[str, Any],
        *,
        queue_size: int = 2048,
        batch_size: int = 512,
        schedule_delay: float = 1.0,
        export_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        random_source: RandomSource = random.random,
    ) -> None:
        self._transport = transport
        self._resource_header = encode_resource_header(resource_attributes)
        # The same Resource as the SDK encodes it: its handler spans join our ResourceSpans.
        self._resource_message = key_values(1, resource_attributes)
        self._scope = encode_scope(SCOPE.name, SCOPE.version or "")
        self._timeout = export_timeout
        self._retry = retry
        self._random = random_source
        self._closing = threading.Event()  # set at shutdown: a retry waiting gives up
        self._last_error_log = -math.inf
        self._last_rejection_log = -math.inf
        self.exported = 0
        self.failed = 0
        self.rejected = 0
        self.retries = 0
        self._queue: BatchQueue[Any] = BatchQueue(
            self._export,
            capacity=queue_size,
            batch_size=batch_size,
            interval=schedule_delay,
            name="telemetry-span-export",
        )
        self.add = self._queue.put  # the hot path: one bound-method call

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def force_flush(self, timeout: float = 5.0) -> bool:
        return self._queue.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Export what is queued within ``timeout`` (retrying as usual), then stop: a retry still
        waiting gives up, and what is left gets one attempt."""
        deadline = time.monotonic() + timeout
        self._queue.flush(timeout)
        self._closing.set()
        self._queue.close(max(0.0, deadline - time.monotonic()))
        self._transport.close()

    def _export(self, batch: list[Any]) -> None:
        deadline = time.monotonic() + self._timeout  # the whole export, retries included
        try:
            payload = self._encode(batch)
        except Exception as exc:
            self._lost(len(batch), f"encoding failed: {exc!r}")
            return
        attempt = 1
        while True:
            try:
                reply = self._transport.send(payload, max(deadline - time.monotonic(), 0.001))
            except ExportError as failure:
                delay = self._retry_delay(failure, attempt, deadline)
                if delay is None:
                    self._lost(len(batch), str(failure))
                    return
                if self._closing.wait(delay):
                    self._lost(len(batch), f"{failure} (not retried: shutting down)")
                    return
                attempt += 1
                self.retries += 1
                continue
            except Exception as exc:  # not classified by the transport: not retried
                self._lost(len(batch), repr(exc))
                return
            self._accepted(len(batch), reply)
            return

    def _retry_delay(self, failure: ExportError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt; None to give up: not retryable, attempts
        spent, or the wait would reach the export timeout (a server asking for longer included)."""
        if not failure.retryable or attempt >= self._retry.max_attempts:
            return None
        if failure.delay is not None:
            delay = failure.delay
        else:
            delay = self._retry.backoff(attempt + 1, self._random)
        if time.monotonic() + delay >= deadline:
            return None
        return delay

    def _accepted(self, count: int, reply: bytes | None) -> None:
        rejected, message = partial_success(reply) if reply else (0, "")
        rejected = min(max(rejected, 0), count)
        self.exported += count - rejected
        if not rejected and not message:
            return
        # OTLP "Partial Success": counted and logged, never retried; a message with 0 rejected
        # spans is a warning from the server.
        self.rejected += rejected
        now = time.monotonic()
        if now - self._last_rejection_log >= _LOG_INTERVAL:
            self._last_rejection_log = now
            _log.warning(
                "collector rejected %s of %s spans (%s so far): %s",
                rejected,
                count,
                self.rejected,
                message[:_MAX_MESSAGE] or "no message",
            )

    def _lost(self, count: int, reason: str) -> None:
        self.failed += count
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_INTERVAL:
            self._last_error_log = now
            _log.warning("span export failed (%s spans lost so far): %s", self.failed, reason)

    def _encode(self, batch: list[Any]) -> bytes:
        # RPC spans arrive as export records (tuples), SDK spans as ReadableSpans.
        # One ResourceSpans per resource, one ScopeSpans per scope (OTLP data model): the SDK's
        # ScopeSpans of our resource join the RPC scope's, and its spans of the RPC scope itself
        # join that ScopeSpans.
        rpc = [encode_span(*span) for span in batch if type(span) is tuple]
        sdk_scopes: list[bytes] = []
        others = [span for span in batch if type(span) is not tuple]
        foreign = b""
        if others:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            for resource_spans in encode_spans(others).resource_spans:
                resource = resource_spans.resource.SerializeToString()
                if resource_spans.schema_url or resource != self._resource_message:
                    foreign += field_bytes(1, resource_spans.SerializeToString())  # its own
                    continue
                for scope_spans in resource_spans.scope_spans:
                    scope = scope_spans.scope.SerializeToString()
                    if scope == self._scope and not scope_spans.schema_url:
                        rpc.extend(span.SerializeToString() for span in scope_spans.spans)
                    else:
                        sdk_scopes.append(scope_spans.SerializeToString())
        scopes = [encode_scope_spans(self._scope, rpc)] if rpc else []
        scopes += sdk_scopes
        own = encode_resource_spans(self._resource_header, scopes) if scopes else b""
        return own + foreign


class PipelineSpanProcessor(SpanProcessor):
    """Feeds spans made through the SDK tracer (handler child spans) into the same pipeline."""

    def __init__(self, pipeline: SpanExportPipeline) -> None:
        self._pipeline = pipeline

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._pipeline.add(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._pipeline.force_flush(timeout_millis / 1000)
