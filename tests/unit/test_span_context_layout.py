"""The per-call paths read SpanContext by index (its properties are Python calls): pin the layout
of the installed opentelemetry-api, so an upgrade that changes it fails here and not in production."""

from __future__ import annotations

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from telemetry.tracing.spancontext import (
    IS_REMOTE,
    IS_VALID,
    SPAN_ID,
    TRACE_FLAGS,
    TRACE_ID,
    TRACE_STATE,
)


def test_span_context_fields_are_at_the_indices_the_fast_paths_read() -> None:
    state = TraceState([("vendor", "v")])
    ctx = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), state)
    assert ctx[TRACE_ID] == ctx.trace_id == 0xABC
    assert ctx[SPAN_ID] == ctx.span_id == 0xDEF
    assert ctx[IS_REMOTE] is ctx.is_remote is True
    assert ctx[TRACE_FLAGS] == ctx.trace_flags == 1
    assert ctx[TRACE_STATE] is ctx.trace_state is state
    assert ctx[IS_VALID] is ctx.is_valid is True
    assert SpanContext(0, 0, False)[IS_VALID] is False
