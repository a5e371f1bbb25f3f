"""What the span limits tests share: an RPC span's template, peer and a linked context, span
limits with some changed, an RPC span on a tracer with those limits (its ended records kept), and
the OTLP the direct encoder wrote for a record, decoded with the official opentelemetry-proto
classes, with its attributes as Python values.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState

from telemetry.testing import SpanCapture
from telemetry.tracing.limits import DEFAULT_LIMITS
from telemetry.tracing.otlp_encoding import SpanTemplate, encode_span
from telemetry.tracing.rpcspan import RpcSpan
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.samplers import LiveSampler, sampler_from_name

TEMPLATE = SpanTemplate(
    "pkg.Svc/Call", "SERVER", {"rpc.system.name": "grpc", "rpc.method": "pkg.Svc/Call"}
)
PEER = {"network.peer.address": "10.0.0.1", "network.peer.port": 5000}
LINKED = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1")]),
)


class Records:
    """What the export pipeline gets: ended spans' records."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def add(self, record: tuple[Any, ...]) -> None:
        self.records.append(record)


def limits(**values: int) -> SpanLimits:
    """DEFAULT_LIMITS with ``values`` changed (None-free: every limit explicit)."""
    settings: dict[str, int] = {
        "max_attributes": 128,
        "max_events": 128,
        "max_links": 128,
        "max_span_attributes": 128,
        "max_event_attributes": 128,
        "max_link_attributes": 128,
        "max_attribute_length": SpanLimits.UNSET,
        "max_span_attribute_length": SpanLimits.UNSET,
    }
    settings.update(values)
    return SpanLimits(**settings)


def rpc_span(
    span_limits: SpanLimits = DEFAULT_LIMITS, capture: SpanCapture | None = None
) -> tuple[RpcSpan, Records]:
    live = LiveSampler(
        sampler_from_name("parentbased_always_on", None), follows_parent_else_samples=True
    )
    records = Records()
    processors = [capture.processor] if capture is not None else []
    tracer = RpcTracer(live, Resource.create({}), records, processors, span_limits)
    span = tracer.start(TEMPLATE, None, None, SpanKind.SERVER, dict(PEER))
    assert isinstance(span, RpcSpan)
    return span, records


def decoded(record: tuple[Any, ...]) -> trace_pb2.Span:
    return trace_pb2.Span.FromString(encode_span(*record))


def plain(value: Any) -> Any:
    """An ``AnyValue`` as Python: its one set field, an array as a list."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    return None if kind is None else getattr(value, str(kind))


def values(span: trace_pb2.Span) -> dict[str, Any]:
    return {kv.key: plain(kv.value) for kv in span.attributes}
