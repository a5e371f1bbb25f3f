"""SpanContext as the per-call paths read and build it: by index, without its Python properties.

SpanContext is a tuple whose fields are read through Python properties (a function call each), and
whose ``__new__`` re-checks the ids (another Python call): the span, the tracer, the tracing
concern and the propagation read the tuple by index and build contexts of ids already known valid
with :func:`valid_span_context` (tests/unit/test_span_context_layout.py pins the layout).
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3
TRACE_STATE: Final = 4
IS_VALID: Final = 5

# The one empty TraceState of this package's spans: tested by identity, since a TraceState's truth
# value is its Python __len__.
EMPTY_TRACE_STATE = TraceState()

_new_tuple = tuple.__new__


def valid_span_context(
    trace_id: int, span_id: int, is_remote: bool, flags: TraceFlags, state: TraceState
) -> SpanContext:
    """``SpanContext(...)`` for ids already known valid (non-zero, in range): SpanContext's
    ``__new__`` is a Python function re-checking them, on every call. ``RpcTracer.start`` and
    ``W3CPropagation.extract`` build it inline on the usual call (a call less per span); a change
    of layout goes there too (tests/unit/test_span_context_layout.py pins it)."""
    return _new_tuple(SpanContext, (trace_id, span_id, is_remote, flags, state, True))
