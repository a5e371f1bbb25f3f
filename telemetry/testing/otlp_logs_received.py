"""Log records as the OTLP test receiver keeps them, decoded with the official
``opentelemetry-proto`` classes (not this package's encoder): one :class:`ReceivedLog` per
``LogRecord``, with its scope and resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from telemetry.tracing.otlp_decoding import any_value_of

LogsRequest = logs_service_pb2.ExportLogsServiceRequest
LogsResponse = logs_service_pb2.ExportLogsServiceResponse


@dataclass(frozen=True)
class ReceivedLog:
    """One log record: ids in lower-case hex ("" when absent), attributes as Python values."""

    body: Any
    severity_number: int
    severity_text: str
    time_unix_nano: int
    observed_time_unix_nano: int
    trace_id: str
    span_id: str
    scope: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    dropped_attributes_count: int = 0


def decode_logs(request: Any) -> list[ReceivedLog]:
    """Every record of an ExportLogsServiceRequest (a message or its serialized bytes)."""
    if isinstance(request, bytes | bytearray):
        request = LogsRequest.FromString(bytes(request))
    out: list[ReceivedLog] = []
    for resource_logs in request.resource_logs:
        resource = {kv.key: any_value_of(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            out.extend(_record(r, scope_logs.scope.name, resource) for r in scope_logs.log_records)
    return out


def _record(record: Any, scope: str, resource: dict[str, Any]) -> ReceivedLog:
    return ReceivedLog(
        body=any_value_of(record.body),
        severity_number=record.severity_number,
        severity_text=record.severity_text,
        time_unix_nano=record.time_unix_nano,
        observed_time_unix_nano=record.observed_time_unix_nano,
        trace_id=record.trace_id.hex(),
        span_id=record.span_id.hex(),
        scope=scope,
        attributes={kv.key: any_value_of(kv.value) for kv in record.attributes},
        resource=resource,
        dropped_attributes_count=record.dropped_attributes_count,
    )
