"""Decode OTLP trace requests into plain records: for the test receiver, and for the console/file
exporter that writes spans as JSON lines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_SPAN_KINDS = {
    0: "UNSPECIFIED",
    1: "INTERNAL",
    2: "SERVER",
    3: "CLIENT",
    4: "PRODUCER",
    5: "CONSUMER",
}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service_name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"
    status_message: str = ""
    events: tuple[str, ...] = ()
    start_ns: int = 0
    end_ns: int = 0


def any_value_of(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value (lists and dicts for arrays and key-value lists)."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_of(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    out: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value_of(kv.value) for kv in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            out.extend(
                ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    kind=_SPAN_KINDS.get(span.kind, str(span.kind)),
                    service_name=service,
                    attributes={kv.key: any_value_of(kv.value) for kv in span.attributes},
                    status=_STATUS.get(span.status.code, str(span.status.code)),
                    status_message=span.status.message,
                    events=tuple(e.name for e in span.events),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                )
                for span in scope_spans.spans
            )
    return out


def decode_bytes(payload: bytes) -> list[ReceivedSpan]:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(payload)
    return decode(request)


def json_line(span: ReceivedSpan) -> str:
    return json.dumps(asdict(span)) + "\n"
