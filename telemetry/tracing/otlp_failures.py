"""OTLP export failures classified by the OTLP rules ("Failures", "Retryable Response Codes",
"Throttling"; https://opentelemetry.io/docs/specs/otlp/): whether a failed export may be retried, and
after how long the server asked to wait. Pure functions of what the transports received; the export
pipeline (:mod:`telemetry.tracing.export`) decides with them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

MAX_MESSAGE = 300  # characters of a server's error message kept in a log line

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


class ExportError(Exception):
    """One failed export attempt, classified by the OTLP rules: ``retryable``, and ``delay``, the
    seconds the server asked to wait (RetryInfo, Retry-After) or None for the client's backoff."""

    def __init__(self, message: str, *, retryable: bool, delay: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.delay = delay


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
    message = f"gRPC {code.name}: {details or ''}"[:MAX_MESSAGE]
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
        message = f"{message}: {detail}"[:MAX_MESSAGE]
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
