"""Span limits as SDK spans carry them: span processors see an RPC span's dropped counts on its
ReadableSpan (and the SDK's OTLP encoder carries them through), and the spans handler code makes
follow the same limits (the spec's defaults, or the configured ones): one limits object for both
kinds of span.
"""

from __future__ import annotations

from helpers import make_config
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from span_limit_helpers import LINKED, limits, rpc_span

import telemetry
from telemetry.testing import SpanCapture
from telemetry.tracing.setup import build_span_limits

# -- SDK processors: the ReadableSpan --------------------------------------------------------------


def test_processors_see_the_dropped_counts_as_the_sdk_carries_them() -> None:
    capture = SpanCapture()
    span, _ = rpc_span(
        limits(
            max_span_attributes=20,
            max_events=1,
            max_event_attributes=1,
            max_links=1,
            max_link_attributes=1,
        ),
        capture,
    )
    for i in range(20):
        span.set_attribute(f"k{i}", i)
    span.add_event("kept", {"a": 1, "b": 2})
    span.add_event("dropped")
    span.add_link(LINKED, {"a": 1, "b": 2})
    span.add_link(LINKED)
    span.end_ok("OK")
    (readable,) = capture.spans()
    assert len(readable.attributes or {}) == 20 and readable.dropped_attributes == 5
    assert readable.dropped_events == 1 and readable.events[0].dropped_attributes == 1
    assert readable.dropped_links == 1 and readable.links[0].dropped_attributes == 1
    # The SDK's OTLP encoder (used for processors' spans) carries them through.
    otlp = encode_spans([readable]).resource_spans[0].scope_spans[0].spans[0]
    assert (otlp.dropped_attributes_count, otlp.dropped_events_count, otlp.dropped_links_count) == (
        5,
        1,
        1,
    )
    assert otlp.events[0].dropped_attributes_count == 1 and otlp.links[0].dropped_attributes_count == 1


# -- SDK spans made by handler code ----------------------------------------------------------------


def sdk_span(tel: telemetry.Telemetry, capture: SpanCapture) -> ReadableSpan:
    with tel.tracer.start_as_current_span("handler.work") as span:
        for i in range(200):
            span.set_attribute(f"k{i}", i)
        for i in range(3):
            span.add_event(f"e{i}", {"long": "x" * 50})
    (readable,) = [s for s in capture.spans() if s.name == "handler.work"]
    return readable


def test_a_handler_span_with_200_attributes_keeps_128_and_counts_72() -> None:
    capture = SpanCapture()
    tel = telemetry.Telemetry(make_config("limits"), span_processors=[capture.processor])
    try:
        readable = sdk_span(tel, capture)
    finally:
        tel.shutdown()
    assert len(readable.attributes or {}) == 128
    assert readable.dropped_attributes == 72
    otlp = encode_spans([readable]).resource_spans[0].scope_spans[0].spans[0]
    assert len(otlp.attributes) == 128 and otlp.dropped_attributes_count == 72


def test_handler_spans_follow_the_configured_limits() -> None:
    capture = SpanCapture()
    config = make_config(
        "limits",
        span_attribute_count_limit=10,
        span_event_count_limit=2,
        event_attribute_count_limit=1,
        span_attribute_value_length_limit=8,
    )
    tel = telemetry.Telemetry(config, span_processors=[capture.processor])
    try:
        readable = sdk_span(tel, capture)
    finally:
        tel.shutdown()
    assert len(readable.attributes or {}) == 10 and readable.dropped_attributes == 190
    assert len(readable.events) == 2 and readable.dropped_events == 1
    assert readable.events[0].attributes == {"long": "x" * 8}  # the one length limit, events too


def test_one_limits_object_for_both_kinds_of_span() -> None:
    config = make_config("limits", span_link_count_limit=3, span_attribute_value_length_limit=64)
    built = build_span_limits(config)
    assert (built.max_span_attributes, built.max_events, built.max_links) == (128, 128, 3)
    assert built.max_span_attribute_length == built.max_attribute_length == 64
    tel = telemetry.Telemetry(config)
    try:
        assert tel.tracing is not None
        assert tel.tracing.rpc_tracer.limits.max_links == 3
        assert tel.tracing.provider._span_limits.max_links == 3
    finally:
        tel.shutdown()
    unlimited = build_span_limits(make_config("limits"))
    assert unlimited.max_span_attribute_length is None and unlimited.max_attribute_length is None
