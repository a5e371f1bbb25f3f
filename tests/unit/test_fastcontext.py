"""The per-call shortcuts around OpenTelemetry's API give what the API gives."""

from __future__ import annotations

import contextvars
import logging
import random

import pytest
from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)

from telemetry.tracing import fastcontext
from telemetry.tracing.otlp_encoding import SpanTemplate
from telemetry.tracing.rpcspan import RpcSpan
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.samplers import LiveSampler, sampler_from_name
from telemetry.tracing.spancontext import valid_span_context


def _span() -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(1)))


def test_attach_and_detach_are_the_apis() -> None:
    before = otel_context.get_current()
    ctx = fastcontext.with_span(_span(), before)
    token = fastcontext.attach(ctx)
    assert otel_context.get_current() is ctx
    assert fastcontext.get_current() is ctx
    fastcontext.detach(token)
    assert otel_context.get_current() is before

    token = otel_context.attach(ctx)  # and the other way round
    assert fastcontext.get_current() is ctx
    fastcontext.detach(token)
    assert otel_context.get_current() is before


def test_with_span_and_current_span_match_the_api() -> None:
    span = _span()
    base = otel_context.set_value("other-key", "kept", Context())
    ours = fastcontext.with_span(span, base)
    theirs = trace.set_span_in_context(span, base)
    assert ours == theirs and type(ours) is Context
    assert trace.get_current_span(ours) is span
    assert fastcontext.current_span(theirs) is span
    assert otel_context.get_value("other-key", ours) == "kept"
    assert base == otel_context.set_value("other-key", "kept", Context())  # not modified
    assert fastcontext.current_span(Context()) is INVALID_SPAN
    assert fastcontext.current_span(Context({"current-span": "not a span"})) is INVALID_SPAN


def test_a_failed_detach_logs_as_the_api_does(caplog: pytest.LogCaptureFixture) -> None:
    token = contextvars.copy_context().run(fastcontext.attach, Context())  # another context's
    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        fastcontext.detach(token)  # does not raise
    assert "Failed to detach context" in caplog.text


def test_valid_span_context_is_span_context() -> None:
    rng = random.Random(7)
    for _ in range(1000):
        trace_id, span_id = rng.getrandbits(128) or 1, rng.getrandbits(64) or 1
        flags = TraceFlags(rng.choice((0, 1)))
        state = TraceState([("k", "v")]) if rng.random() < 0.5 else TraceState()
        remote = rng.random() < 0.5
        ours = valid_span_context(trace_id, span_id, remote, flags, state)
        theirs = SpanContext(trace_id, span_id, remote, flags, state)
        assert ours == theirs and type(ours) is SpanContext
        assert ours.is_valid and ours.trace_flags == flags and ours.is_remote is remote


def test_end_ok_is_set_attribute_then_end() -> None:
    records: list[tuple[object, ...]] = []

    class Collect:
        def add(self, record: tuple[object, ...]) -> None:
            records.append(record)

    live = LiveSampler(
        sampler_from_name("parentbased_always_on", None), follows_parent_else_samples=True
    )
    rpc = RpcTracer(live, Resource.create({}), Collect())
    template = SpanTemplate("Unary", "SERVER", {"rpc.system.name": "grpc"})
    spans = [rpc.start(template, None, None, SpanKind.SERVER, {"peer": "x"}) for _ in range(2)]
    first, second = spans
    assert isinstance(first, RpcSpan) and isinstance(second, RpcSpan)
    first.set_attribute("rpc.response.status_code", "OK")
    first.end(end_time=5)
    second.end_ok("OK")
    second._end_ns = 5  # the same end time, to compare the records
    ours, theirs = second.export_record(), first.export_record()
    # (template, trace id, span id, parent, trace state, flags, start, end, attributes, ...):
    # all equal but the ids and the start time
    assert ours[0] == theirs[0] and ours[3:6] == theirs[3:6] and ours[7:] == theirs[7:]
    second.end_ok("OK")  # ended: nothing more
    assert len(records) == 2


def test_the_baggage_key_is_the_apis() -> None:
    context = otel_baggage.set_baggage("tenant", "acme", Context())
    assert context.get(fastcontext.BAGGAGE_KEY) == {"tenant": "acme"}
    assert dict(otel_baggage.get_all(context)) == context[fastcontext.BAGGAGE_KEY]
