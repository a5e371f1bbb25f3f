"""Tracing concerns: a SERVER span continuing the caller's W3C trace context and baggage, and a
CLIENT span (child of the current span) whose context is injected into the outgoing metadata.

Names and attributes follow the current OpenTelemetry RPC conventions: span name
``pkg.Service/Method``, ``rpc.system.name=grpc``, ``rpc.method``, ``rpc.response.status_code`` and
``error.type``; server errors are the codes the gRPC conventions list, client errors any non-OK code.
An uncaught handler exception sets status ERROR with exactly one exception event. A malformed
``traceparent`` is ignored: the call starts a new trace.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetry.computed_cache import ComputedCache
from telemetry.rpc.call import CallState, MethodInfo, Side
from telemetry.rpc.peer import split_host_port
from telemetry.tracing import fastcontext
from telemetry.tracing.rpcspan import RpcSpan
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.spancontext import IS_VALID, SPAN_ID, TRACE_ID

_OK = grpc.StatusCode.OK
_SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def trace_ids(state: CallState) -> tuple[str, str] | None:
    """(trace_id, span_id) in hex for the call's span (formatted on demand: only exemplars, at
    most once a second per histogram bucket, ask)."""
    ids = span_ids(state)
    return None if ids is None else (format(ids[0], "032x"), format(ids[1], "016x"))


def span_ids(state: CallState) -> tuple[int, int] | None:
    """(trace_id, span_id) of the call's span as integers, or None (no span, or an invalid one)."""
    span = state.span
    if span is None:
        return None
    ctx = span.get_span_context()
    return (ctx[TRACE_ID], ctx[SPAN_ID]) if ctx[IS_VALID] else None


def is_sampled(state: CallState) -> bool:
    return state.span is not None and bool(state.span.get_span_context().trace_flags.sampled)


def _peer_attributes(peer: str) -> dict[str, Any]:
    host, port = split_host_port(peer)
    attributes: dict[str, Any] = {"network.peer.address": host}
    if port is not None:
        attributes["network.peer.port"] = port
    return attributes


# Every call on a connection has the same peer: its span attributes, cached.
PEER_ATTRIBUTES: ComputedCache[str, dict[str, Any]] = ComputedCache(_peer_attributes)
"""``network.peer.address`` / ``.port`` of a server span (do not modify the dicts)."""


_TRACE_CONTEXT_KEYS = ("traceparent", "tracestate")


def drop_trace_context(headers: list[tuple[str, Any]]) -> None:
    """Remove the caller's own ``traceparent`` and ``tracestate`` from outgoing metadata: the
    call's CLIENT span sets them (as a TextMapPropagator's ``inject`` sets, not adds), so a caller
    forwarding the headers it received (a gateway copying HTTP headers, say) cannot send a second
    trace context, or another trace's vendor state, beside the span's."""
    for key, _ in headers:
        if key in _TRACE_CONTEXT_KEYS:
            headers[:] = [header for header in headers if header[0] not in _TRACE_CONTEXT_KEYS]
            return


class _Tracing:
    _kind = "INTERNAL"

    def __init__(
        self,
        tracer: RpcTracer,
        propagation: Any,
        untraced_services: tuple[str, ...],
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._tracer = tracer
        self._sampler = tracer.sampler
        self._propagation = propagation
        self._untraced = frozenset(untraced_services)
        self._attributes = attributes or {}

    def for_method(self, info: MethodInfo) -> _Tracing | None:
        """Traces the method's calls with its span template; untraced services sit out."""
        if info.service in self._untraced:
            return None
        attributes = {"rpc.system.name": "grpc", "rpc.method": info.rpc_method, **self._attributes}
        info.extras[self] = self._tracer.template(info.rpc_method, self._kind, attributes)
        return self

    @staticmethod
    def _end(span: Any, state: CallState, error_codes: frozenset[Any] | None) -> None:
        """End the span of a call that did not simply end OK (the finishers end those with
        ``end_ok`` themselves: one call instead of this one, set_attribute and end)."""
        code = state.code
        name = code._name_  # not .name: an enum property, a Python call per span
        span.set_attribute("rpc.response.status_code", name)
        if code is not _OK and (error_codes is None or code in error_codes):
            span.set_attribute("error.type", name)
            span.set_status(Status(StatusCode.ERROR, state.details or name))
        if state.exception is not None:
            span.record_exception(state.exception, escaped=True)
        span.end()


class ServerTracing(_Tracing):
    """Continues the incoming trace; the span is current while the handler runs."""

    _kind = Side.SERVER.name

    def on_start(self, state: CallState) -> None:
        template = state.info.extras[self]
        # RpcTracer.reads_parent_context, without its property call
        parent, context = self._propagation.extract(state.metadata, not self._sampler.fast_path)
        peer = PEER_ATTRIBUTES[state.peer]
        span = self._tracer.start(template, parent, context, SpanKind.SERVER, peer)
        state.span = span
        state.span_token = fastcontext.attach(fastcontext.with_span(span, context))

    def on_finish(self, state: CallState) -> None:
        span = state.span
        if span is None:
            return
        if state.code is _OK and type(span) is RpcSpan and state.exception is None:
            span.end_ok("OK")
        else:
            self._end(span, state, _SERVER_ERROR_CODES)
        token = state.span_token
        try:
            fastcontext.reset(token)
        except Exception:  # another context's token: the API's detach logs it
            fastcontext.detach(token)


class ClientTracing(_Tracing):
    """Starts a CLIENT span under the current span and injects its context and baggage."""

    _kind = Side.CLIENT.name

    def __init__(
        self, tracer: RpcTracer, propagation: Any, untraced_services: tuple[str, ...], target: str = ""
    ) -> None:
        attributes: dict[str, Any] = {}
        if target:
            host, port = split_host_port(target)
            attributes["server.address"] = host
            if port is not None:
                attributes["server.port"] = port
        super().__init__(tracer, propagation, untraced_services, attributes)

    def on_start(self, state: CallState) -> None:
        template = state.info.extras[self]
        current = fastcontext.get_current()
        parent = fastcontext.current_span(current).get_span_context()
        span = self._tracer.start(template, parent, current, SpanKind.CLIENT)
        state.span = span
        headers = state.outgoing_metadata
        if headers is None:
            headers = state.outgoing_metadata = [*state.metadata]
        if headers:
            drop_trace_context(headers)
        self._propagation.inject(span.get_span_context(), headers, current)

    def on_finish(self, state: CallState) -> None:
        span = state.span
        if span is None:
            return
        if state.code is _OK and type(span) is RpcSpan and state.exception is None:
            span.end_ok("OK")
        else:
            self._end(span, state, None)
