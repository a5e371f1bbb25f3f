"""Trace-context propagation through gRPC metadata, and the W3C propagator for everything else.

Trace context follows W3C Trace Context (https://www.w3.org/TR/trace-context/) to the letter, by the
rules of :mod:`telemetry.tracing.w3c`: a malformed ``traceparent``, or several of them, means no
parent (the call starts a new trace); an invalid ``tracestate`` (a bad key or value, a duplicated
key, more than 32 members) is discarded as a whole while the ``traceparent`` is kept; several
``tracestate`` fields are one list. Two ways in, one set of rules:

* :class:`W3CPropagation`, the default for gRPC (W3C ``tracecontext`` and ``baggage``): reads the
  metadata in one pass, repeated keys included, without a generic carrier; the common call (one
  ``traceparent``, no ``tracestate``) costs what it did. Baggage goes through the SDK's W3C codec
  only when present.
* :class:`W3CTraceContextPropagator`, an OpenTelemetry ``TextMapPropagator``: what
  :func:`telemetry.tracing.setup.build_propagator` composes in place of the SDK's
  ``TraceContextTextMapPropagator``, so the ASGI middleware and, once :func:`telemetry.init` has
  installed it, ``opentelemetry.propagate`` (any instrumentation library) follow the same rules.

Any other configuration goes through the configured ``TextMapPropagator`` (:class:`GenericPropagation`).

Bad inbound headers are logged (``telemetry.tracing.propagation``: the header ignored or discarded,
quoted), and so are the SDK baggage codec's warnings: all rate-limited and shortened
(:mod:`telemetry.tracing.header_warnings`) from the moment this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from telemetry.tracing import fastcontext, header_warnings, w3c
from telemetry.tracing.fastcontext import BAGGAGE_KEY
from telemetry.tracing.spancontext import EMPTY_TRACE_STATE, valid_span_context
from telemetry.tracing.w3c import parse_traceparent, parse_tracestate

_EMPTY = Context()
_new_tuple = tuple.__new__  # valid_span_context's way to build a SpanContext of checked ids
_TRACE_FLAGS = tuple(TraceFlags(flags) for flags in range(256))  # one each, not one per call

Headers = list[tuple[str, str]]

HEADER_LOGGER = "telemetry.tracing.propagation"
_log = logging.getLogger(HEADER_LOGGER)
# Warnings about bad headers quote them: a flood of bad headers must not become a flood of log
# lines, here or in the SDK's baggage codec (the ASGI path parses baggage there too).
header_warnings.install((*header_warnings.HEADER_LOGGERS, HEADER_LOGGER))


def remote_parent(traceparent: object, tracestate: str | Sequence[object] | None) -> SpanContext | None:
    """The caller's span context from its one ``traceparent`` and its ``tracestate`` (one value, or
    every field in order; None: absent), or None (a new trace). Never raises."""
    fields = parse_traceparent(traceparent)
    if fields is None:
        if traceparent:
            _log.warning("malformed traceparent ignored, a new trace starts: %r", _text(traceparent))
        return None
    trace_id, span_id, flags = fields
    state = EMPTY_TRACE_STATE
    if tracestate:
        members = parse_tracestate(tracestate)
        if members is None:
            _log.warning("invalid tracestate discarded, traceparent kept: %r", _text(tracestate))
        elif members:
            state = TraceState(members)
    return valid_span_context(trace_id, span_id, True, _TRACE_FLAGS[flags], state)


def _text(header: object) -> str:
    """A header as one string (the throttle shortens string arguments only)."""
    if isinstance(header, str):
        return header
    if isinstance(header, (list, tuple)):
        return ",".join(map(str, header))
    return repr(header)


class _Fields(list[Any]):
    """The values of a repeated key, in order: a type of its own, so a value is never taken for it."""


def _more_fields(seen: Any, value: Any) -> _Fields:
    """The values of a repeated key so far, ``value`` added (a list from the second on)."""
    if type(seen) is _Fields:
        seen.append(value)
        return seen
    return _Fields((seen, value))


def _several_traceparents(count: int) -> None:
    _log.warning("%d traceparent headers: all ignored, a new trace starts", count)


class W3CTraceContextPropagator(TextMapPropagator):
    """W3C Trace Context as an OpenTelemetry ``TextMapPropagator``, by the rules of
    :mod:`telemetry.tracing.w3c`: the SDK's ``TraceContextTextMapPropagator`` with a stricter
    reading (several ``traceparent`` values are invalid: the SDK takes the first)."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        if context is None:
            context = Context()
        try:
            traceparents = getter.get(carrier, w3c.TRACEPARENT)
            if not traceparents:
                return context
            if len(traceparents) != 1:
                _several_traceparents(len(traceparents))
                return context
            tracestates = getter.get(carrier, w3c.TRACESTATE)
        except Exception:  # a carrier or getter that fails: no parent, never an error
            return context
        parent = remote_parent(traceparents[0], tracestates)
        if parent is None:
            return context
        return trace.set_span_in_context(NonRecordingSpan(parent), context)

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        trace_id, span_id, flags = span_context.trace_id, span_context.span_id, span_context.trace_flags
        setter.set(carrier, w3c.TRACEPARENT, w3c.format_traceparent(trace_id, span_id, flags))
        if span_context.trace_state:
            setter.set(carrier, w3c.TRACESTATE, w3c.format_tracestate(span_context.trace_state.items()))

    @property
    def fields(self) -> set[str]:
        return {w3c.TRACEPARENT, w3c.TRACESTATE}


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
        # One pass, no call per key: the common call (one traceparent, nothing else of ours)
        # calls remote_parent only; what is rare (baggage, repeated keys) goes through helpers.
        traceparent = tracestate = baggage_header = None
        traceparents = 0
        for key, value in metadata:
            if key == "traceparent":
                traceparent = value
                traceparents += 1
            elif key == "tracestate":  # every field, in order, when the key repeats
                tracestate = value if tracestate is None else _more_fields(tracestate, value)
            elif key == "baggage":
                baggage_header = value
        context = self._baggage_context(baggage_header) if baggage_header else _EMPTY
        parent = None
        if traceparents == 1:
            fields = None if tracestate else parse_traceparent(traceparent)
            if fields is not None:  # the usual call: remote_parent's result, two calls fewer
                trace_id, span_id, flags = fields
                parent = _new_tuple(SpanContext, (trace_id, span_id, True, _TRACE_FLAGS[flags],
                                                  EMPTY_TRACE_STATE, True))  # fmt: skip
            else:  # a tracestate to read, or a malformed traceparent to report
                parent = remote_parent(traceparent, tracestate)
        elif traceparents:
            _several_traceparents(traceparents)
        if parent is not None and parent_in_context:
            context = trace.set_span_in_context(NonRecordingSpan(parent), context)
        return parent, context

    def _baggage_context(self, header: str) -> Context:
        """A context with the caller's baggage (the keys kept), or the empty one when this
        propagation reads none."""
        if self._baggage is None or self._inbound == _NONE:
            return _EMPTY
        context = self._baggage.extract({"baggage": header}, _EMPTY)
        if self._inbound is not None:
            context = keep_baggage(context, self._inbound)
        return context

    def inject(
        self, span_context: SpanContext, headers: Headers, context: Context | None = None
    ) -> None:
        """Append to ``headers`` those for ``span_context``, and the baggage of ``context``
        (default: the current context)."""
        # Indexed, not through SpanContext's properties (a Python call each): see spancontext.
        trace_id, span_id, _, trace_flags, trace_state, _ = span_context
        flags = "01" if trace_flags & 1 else "00"  # w3c.format_traceparent, inline (hot path)
        headers.append(("traceparent", f"00-{trace_id:032x}-{span_id:016x}-{flags}"))
        if trace_state is not EMPTY_TRACE_STATE and trace_state:
            headers.append(("tracestate", w3c.format_tracestate(trace_state.items())))
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
        carrier: dict[str, str | list[str]] = {}
        for key, value in metadata:
            if not isinstance(value, str):
                continue
            seen = carrier.get(key)
            if seen is None:
                carrier[key] = value
            elif isinstance(seen, list):
                seen.append(value)
            else:  # a repeated key: every value, in order (the getter's list, as for HTTP fields)
                carrier[key] = [seen, value]
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
