"""Log records over OTLP, beside the JSON lines: the OpenTelemetry logs data model
(https://opentelemetry.io/docs/specs/otel/logs/data-model/) encoded directly, sent through the same
kind of bounded, non-blocking pipeline as spans (:class:`~telemetry.tracing.otlp_pipeline.
OtlpExportPipeline`: its own queue and thread, retries within the export timeout).

The line writer hands each event to :meth:`LogExportPipeline.add_event` on its own thread, after
building and redacting it, so a handler pays nothing more for OTLP logs than for the line. An event
becomes one ``LogRecord``: ``timestamp`` the time, ``level`` the severity (number and text, as the
data model's mapping table gives them), ``event`` the body, ``trace_id`` / ``span_id`` the record's
trace context fields, every other field an attribute (at most :data:`MAX_ATTRIBUTES`, each string at
most :data:`MAX_VALUE_CHARS` characters; the rest counted in ``dropped_attributes_count``). Records
are grouped in one ``ScopeLogs`` per logger name (the instrumentation scope), all under the process's
resource. The exporters' own warnings are not exported (a dead collector must not feed itself).

Field numbers are from opentelemetry/proto/logs/v1/logs.proto; a test decodes the output with the
official ``opentelemetry-proto`` classes.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

from telemetry.config import TelemetryConfig
from telemetry.tracing.otlp_encoding import (
    any_value,
    encode_key_value,
    encode_resource_header,
    encode_resource_spans,
    encode_scope,
    encode_scope_spans,
    field_bytes,
    field_string,
    field_varint,
)
from telemetry.tracing.otlp_pipeline import EXPORT_LOGGER, OtlpExportPipeline
from telemetry.tracing.otlp_transports import Transport

__all__ = ["LogExportPipeline", "build_log_export", "encode_log_record"]

MAX_ATTRIBUTES = 128
"""Attributes kept per record (the SDK's default attribute count limit)."""
MAX_VALUE_CHARS = 8192
"""Characters kept of a string attribute or body; longer ones are cut (a stack trace fits)."""

# The data model's mapping of common level names: SeverityNumber and its short name.
SEVERITY = {
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warning": (13, "WARN"),
    "error": (17, "ERROR"),
    "critical": (21, "FATAL"),
}
_RECORD_FIELDS = frozenset({"timestamp", "level", "event", "trace_id", "span_id"})
_DEFAULT_SCOPE = "telemetry"
_pack_fixed64 = struct.Struct("<Q").pack
_INT64 = (-(2**63), 2**63 - 1)


def encode_log_record(event: Mapping[str, Any], observed_ns: int) -> bytes:
    """One ``LogRecord`` message (not yet wrapped as a field) for a pipeline event."""
    stamp = event.get("timestamp")
    time_ns = observed_ns
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 < stamp < 2**63 / 1e9:
        whole = int(stamp)  # seconds and fraction apart: a float's 53 bits cannot hold ns since 1970
        time_ns = whole * 1_000_000_000 + round((stamp - whole) * 1e9)
    parts = [b"\x09" + _pack_fixed64(time_ns)]  # field 1, fixed64
    severity = SEVERITY.get(str(event.get("level", "")).lower())
    if severity is not None:
        parts.append(field_varint(2, severity[0]) + field_string(3, severity[1]))
    body = event.get("event")
    if body is not None:
        parts.append(field_bytes(5, any_value(_bounded(body if isinstance(body, str) else _text(body)))))
    attributes = [(k, v) for k, v in event.items() if k not in _RECORD_FIELDS and isinstance(k, str)]
    # Uncached (spans cache their repeating values): log values rarely repeat.
    parts.extend(encode_key_value(6, k, _attribute(v)) for k, v in attributes[:MAX_ATTRIBUTES])
    if len(attributes) > MAX_ATTRIBUTES:
        parts.append(field_varint(7, len(attributes) - MAX_ATTRIBUTES))
    trace_id, span_id = _id(event.get("trace_id"), 32), _id(event.get("span_id"), 16)
    if trace_id is not None:
        parts.append(field_bytes(9, trace_id))
        if span_id is not None:
            parts.append(field_bytes(10, span_id))
    parts.append(b"\x59" + _pack_fixed64(observed_ns))  # field 11, fixed64
    return b"".join(parts)


def _id(value: Any, digits: int) -> bytes | None:
    """A W3C trace or span id from its lower-case hex; None unless valid (and not all zero)."""
    if not isinstance(value, str) or len(value) != digits:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if any(raw) else None


def _attribute(value: Any) -> Any:
    """A value OTLP's AnyValue holds as it is (str, bool, int in int64, finite float), else text."""
    if isinstance(value, str):
        return _bounded(value)
    if isinstance(value, bool) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return _bounded(_text(value))


def _text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=repr).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


class LogExportPipeline(OtlpExportPipeline):
    """Log records: one ExportLogsServiceRequest per batch, one ResourceLogs for the process."""

    signal = "log records"
    noun = "log"

    def __init__(
        self, transport: Transport, resource_attributes: Mapping[str, Any], **options: Any
    ) -> None:
        """``options``: those of :class:`OtlpExportPipeline` (queue, batch, delays, retry)."""
        # ResourceLogs and ScopeLogs have the field numbers of ResourceSpans and ScopeSpans.
        self._resource_header = encode_resource_header(resource_attributes)
        self._scopes: dict[str, bytes] = {}
        super().__init__(transport, thread_name="telemetry-log-export", **options)

    def add_event(self, event: dict[str, Any]) -> None:
        """Queue a built, redacted event (never blocks; a full queue drops it and counts it)."""
        if event.get("logger") != EXPORT_LOGGER:
            self.add(event)

    def _encode(self, batch: list[Any]) -> bytes:
        observed = time.time_ns()
        by_scope: dict[str, list[bytes]] = {}
        for event in batch:
            logger = event.get("logger")
            name = logger if isinstance(logger, str) and logger else _DEFAULT_SCOPE
            by_scope.setdefault(name[:256], []).append(encode_log_record(event, observed))
        scopes = [encode_scope_spans(self._scope(name), records) for name, records in by_scope.items()]
        return encode_resource_spans(self._resource_header, scopes)

    def _scope(self, name: str) -> bytes:
        scope = self._scopes.get(name)
        if scope is None:
            scope = encode_scope(name, "")
            if len(self._scopes) < 1024:  # logger names are code's, but keep the cache bounded
                self._scopes[name] = scope
        return scope


def build_log_export(config: TelemetryConfig) -> LogExportPipeline | None:
    """The pipeline ``config.logs_exporter`` asks for (None for ``none``)."""
    from telemetry.tracing.setup import build_resource, build_transport

    transport = build_transport(config, "logs")
    if transport is None:
        return None
    return LogExportPipeline(
        transport,
        dict(build_resource(config).attributes),
        queue_size=config.log_queue_size,
        export_timeout=config.export_timeout,
    )
