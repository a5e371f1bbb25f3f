"""The span export pipeline: bounded queue -> export thread -> OTLP bytes -> transport.

Callers only append to a bounded deque; a full queue drops the span and counts it (``dropped``), so
a slow or dead collector never blocks or slows an RPC. The export thread encodes RPC spans with the
direct encoder and spans made through the SDK tracer with the SDK's encoder (two serialized
ExportTraceServiceRequests concatenate into one: repeated fields merge), and sends each batch with a
timeout. A failed batch is counted and logged (rate-limited), never retried forever.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit

import grpc
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from telemetry.batch_queue import BatchQueue
from telemetry.tracing.otlp_decoding import decode_bytes, json_line
from telemetry.tracing.otlp_encoding import (
    encode_request,
    encode_resource_header,
    encode_scope,
    encode_span,
)
from telemetry.tracing.rpcspan import SCOPE

_log = logging.getLogger("telemetry.export")
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class GrpcTransport:
    """OTLP/gRPC with raw bytes: no message objects on either side."""

    def __init__(self, endpoint: str, insecure: bool | None, headers: Mapping[str, str]) -> None:
        url = urlsplit(endpoint)
        target = url.netloc or url.path
        secure = url.scheme == "https" if insecure is None else not insecure
        if secure:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._export = self._channel.unary_unary(_EXPORT_METHOD)
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())

    def send(self, payload: bytes, timeout: float) -> None:
        self._export(payload, timeout=timeout, metadata=self._metadata or None)

    def close(self) -> None:
        self._channel.close()


class HttpTransport:
    """OTLP/HTTP with protobuf bodies."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self._url = url
        self._headers = {"Content-Type": "application/x-protobuf", **headers}

    def send(self, payload: bytes, timeout: float) -> None:
        request = urllib.request.Request(self._url, data=payload, headers=self._headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()

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


class SpanExportPipeline:
    def __init__(
        self,
        transport: Any,
        resource_attributes: Mapping[str, Any],
        *,
        queue_size: int = 2048,
        batch_size: int = 512,
        schedule_delay: float = 1.0,
        export_timeout: float = 5.0,
    ) -> None:
        self._transport = transport
        self._resource_header = encode_resource_header(resource_attributes)
        self._scope = encode_scope(SCOPE.name, SCOPE.version or "")
        self._timeout = export_timeout
        self._last_error_log = 0.0
        self.exported = 0
        self.failed = 0
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
        self._queue.close(timeout)
        self._transport.close()

    def _export(self, batch: list[Any]) -> None:
        try:
            payload = self._encode(batch)
            self._transport.send(payload, self._timeout)
            self.exported += len(batch)
        except Exception as exc:
            self.failed += len(batch)
            now = time.monotonic()
            if now - self._last_error_log > 60:  # a dead collector must not flood the logs
                self._last_error_log = now
                _log.warning("span export failed (%s spans lost so far): %s", self.failed, exc)

    def _encode(self, batch: list[Any]) -> bytes:
        # RPC spans arrive as export records (tuples), SDK spans as ReadableSpans.
        rpc = [encode_span(*span) for span in batch if type(span) is tuple]
        payload = encode_request(self._resource_header, self._scope, rpc) if rpc else b""
        others = [span for span in batch if type(span) is not tuple]
        if others:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            payload += encode_spans(others).SerializeToString()
        return payload


class PipelineSpanProcessor(SpanProcessor):
    """Feeds spans made through the SDK tracer (handler child spans) into the same pipeline."""

    def __init__(self, pipeline: SpanExportPipeline) -> None:
        self._pipeline = pipeline

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._pipeline.add(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._pipeline.force_flush(timeout_millis / 1000)
