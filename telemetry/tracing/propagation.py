"""Trace-context propagation through gRPC metadata.

With the default propagators (W3C ``tracecontext`` and ``baggage``) the ``traceparent`` header is parsed
and formatted directly, with the same validation rules as the SDK's propagator (a malformed header is
ignored, so the call starts a new trace); baggage goes through the SDK's W3C codec only when present.
Any other configuration goes through the configured ``TextMapPropagator`` unchanged.

The SDK's codecs warn about each bad inbound header, quoting it: those warnings are rate-limited
and shortened (:mod:`telemetry.logging.throttle`) from the moment this module is imported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from telemetry.logging import throttle
from telemetry.tracing import fastcontext
from telemetry.tracing.fastcontext import BAGGAGE_KEY
from telemetry.tracing.rpcspan import EMPTY_TRACE_STATE, valid_span_context

_TRACEPARENT = re.compile(r"^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*$")
_EMPTY = Context()

Headers = list[tuple[str, str]]

# Both paths (this module's for gRPC, the SDK propagator's for ASGI) parse headers in SDK code whose
# warnings quote the header: a flood of bad headers must not become a flood of log lines.
throttle.install()


def parse_traceparent(header: str, tracestate: str | None) -> SpanContext | None:
    match = _TRACEPARENT.match(header)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else EMPTY_TRACE_STATE
    return valid_span_context(trace_id, span_id, True, TraceFlags(int(flags_hex, 16)), state)


def keep_baggage(context: Context, allowed: Collection[str] | None) -> Context:
    """``context`` with only the ``allowed`` keys of the caller's baggage (None: every key).

    W3C Baggage (section "Security considerations"): baggage received from outside the system is
    untrusted, so an edge drops it or keeps an allow-list; values governance reads for a VIP
    bypass or routing (``user``, ``group``) must come from the edge's own notion of the caller.
    """
    if allowed is None:
        return context
    entries = context.get(BAGGAGE_KEY)
    if not entries or not isinstance(entries, dict):
        return context
    kept = {key: value for key, value in entries.items() if key in allowed}
    if len(kept) == len(entries):
        return context
    return otel_context.set_value(BAGGAGE_KEY, kept, context)


_NONE: frozenset[str] = frozenset()


class W3CPropagation:
    """The default: tracecontext (+ baggage when enabled), without a generic carrier.
    ``inbound_baggage``: the caller's baggage keys a server keeps (None: all; empty: none)."""

    def __init__(self, baggage: bool = True, inbound_baggage: Collection[str] | None = None) -> None:
        self._baggage = W3CBaggagePropagator() if baggage else None
        self._inbound = None if inbound_baggage is None else frozenset(inbound_baggage)

    def extract(
        self, metadata: Sequence[tuple[str, Any]], parent_in_context: bool = True
    ) -> tuple[SpanContext | None, Context]:
        """The remote parent, and a context with the baggage (and, if asked, the parent span:
        only samplers read it there)."""
        traceparent = tracestate = baggage_header = None
        for key, value in metadata:
            if key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
            elif key == "baggage":
                baggage_header = value
        context = _EMPTY
        if baggage_header and self._baggage is not None and self._inbound != _NONE:
            context = self._baggage.extract({"baggage": baggage_header}, context)
            if self._inbound is not None:
                context = keep_baggage(context, self._inbound)
        parent = parse_traceparent(traceparent, tracestate) if traceparent else None
        if parent is not None and parent_in_context:
            context = trace.set_span_in_context(NonRecordingSpan(parent), context)
        return parent, context

    def inject(
        self, span_context: SpanContext, headers: Headers, context: Context | None = None
    ) -> None:
        """Append to ``headers`` those for ``span_context``, and the baggage of ``context``
        (default: the current context)."""
        # Indexed, not through SpanContext's properties (a Python call each): see rpcspan.
        trace_id, span_id, _, trace_flags, trace_state, _ = span_context
        flags = "01" if trace_flags == 1 else f"{int(trace_flags):02x}"
        headers.append(("traceparent", f"00-{trace_id:032x}-{span_id:016x}-{flags}"))
        if trace_state is not EMPTY_TRACE_STATE and trace_state:
            headers.append(("tracestate", trace_state.to_header()))
        # otel_baggage.get_all(context), inline (three Python calls there, on every outgoing call)
        baggage = (context if context is not None else fastcontext.get_current()).get(BAGGAGE_KEY)
        if self._baggage is not None and baggage and isinstance(baggage, dict):
            carrier: dict[str, str] = {}
            self._baggage.inject(carrier, context)
            if "baggage" in carrier:
                headers.append(("baggage", carrier["baggage"]))


class GenericPropagation:
    """Any configured TextMapPropagator (for example tracecontext only, or none)."""

    def __init__(self, propagator: TextMapPropagator) -> None:
        self._propagator = propagator

    def extract(
        self, metadata: Sequence[tuple[str, Any]], parent_in_context: bool = True
    ) -> tuple[SpanContext | None, Context]:
        carrier = {k: v for k, v in metadata if isinstance(v, str)}
        context = self._propagator.extract(carrier, context=_EMPTY)
        parent = trace.get_current_span(context).get_span_context()
        return (parent if parent.is_valid else None), context

    def inject(
        self, span_context: SpanContext, headers: Headers, context: Context | None = None
    ) -> None:
        carrier: dict[str, str] = {}
        context = trace.set_span_in_context(NonRecordingSpan(span_context), context)
        self._propagator.inject(carrier, context=context)
        headers.extend(carrier.items())


def propagation_for(
    names: tuple[str, ...],
    propagator: TextMapPropagator,
    inbound_baggage: Collection[str] | None = None,
) -> Any:
    if names in (("tracecontext", "baggage"), ("baggage", "tracecontext")):
        return W3CPropagation(baggage=True, inbound_baggage=inbound_baggage)
    if names == ("tracecontext",):
        return W3CPropagation(baggage=False)
    return GenericPropagation(propagator)
