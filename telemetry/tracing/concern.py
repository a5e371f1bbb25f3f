"""Tracing concerns: a SERVER span continuing the caller's W3C trace context and baggage, and a
CLIENT span (child of the current span) whose context is injected into the outgoing metadata.

Names and attributes follow the current OpenTelemetry RPC conventions: span name
``pkg.Service/Method``, ``rpc.system.name=grpc``, ``rpc.method``, ``rpc.response.status_code`` and
``error.type``; server errors are the codes the gRPC conventions list, client errors any non-OK code.
An uncaught handler exception sets status ERROR with exactly one exception event. A malformed
``traceparent`` is ignored by the propagator: the call starts a new trace.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from telemetry.rpc.call import CallState, MethodInfo

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
    """(trace_id, span_id) in hex for the call's span, computed once per call."""
    if state.trace_ids is None and state.span is not None:
        ctx = state.span.get_span_context()
        if ctx.is_valid:
            state.trace_ids = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    return state.trace_ids


def is_sampled(state: CallState) -> bool:
    return state.span is not None and bool(state.span.get_span_context().trace_flags.sampled)


def _split_host_port(address: str) -> tuple[str, int | None]:
    """Host and port from a peer (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``) or a target (``dns:///h:5``)."""
    for prefix in ("ipv4:", "ipv6:", "dns:///", "dns:", "unix:", "unix-abstract:"):
        if address.startswith(prefix):
            if prefix.startswith("unix"):
                return address[len(prefix) :], None
            address = address[len(prefix) :]
            break
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)


class _Tracing:
    def __init__(
        self, tracer: Tracer, propagator: TextMapPropagator, untraced_services: tuple[str, ...]
    ) -> None:
        self._tracer = tracer
        self._propagator = propagator
        self._untraced = frozenset(untraced_services)

    def prepare(self, info: MethodInfo) -> None:
        if info.service in self._untraced:
            info.extras[self] = None
        else:
            info.extras[self] = {"rpc.system.name": "grpc", "rpc.method": info.rpc_method}

    def _end(self, state: CallState, error_codes: frozenset[Any] | None) -> None:
        span = state.span
        code = state.code
        span.set_attribute("rpc.response.status_code", code.name)
        if code != grpc.StatusCode.OK and (error_codes is None or code in error_codes):
            span.set_attribute("error.type", code.name)
            span.set_status(Status(StatusCode.ERROR, state.details or code.name))
        if state.exception is not None:
            span.record_exception(state.exception, escaped=True)
        span.end()


class ServerTracing(_Tracing):
    """Continues the incoming trace; the span is current while the handler runs."""

    def on_start(self, state: CallState) -> None:
        base = state.info.extras.get(self)
        if base is None:
            return
        carrier = {k: v for k, v in state.metadata if isinstance(v, str)}
        parent = self._propagator.extract(carrier)
        attributes = dict(base)
        host, port = _split_host_port(state.peer)
        attributes["network.peer.address"] = host
        if port is not None:
            attributes["network.peer.port"] = port
        span = self._tracer.start_span(
            state.info.rpc_method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        state.span = span
        state.span_token = otel_context.attach(trace.set_span_in_context(span, parent))

    def on_finish(self, state: CallState) -> None:
        if state.span is None:
            return
        self._end(state, _SERVER_ERROR_CODES)
        otel_context.detach(state.span_token)


class ClientTracing(_Tracing):
    """Starts a CLIENT span under the current span and injects its context and baggage."""

    def __init__(
        self,
        tracer: Tracer,
        propagator: TextMapPropagator,
        untraced_services: tuple[str, ...],
        target: str = "",
    ) -> None:
        super().__init__(tracer, propagator, untraced_services)
        self._server_attributes: dict[str, Any] = {}
        if target:
            host, port = _split_host_port(target)
            self._server_attributes["server.address"] = host
            if port is not None:
                self._server_attributes["server.port"] = port

    def prepare(self, info: MethodInfo) -> None:
        super().prepare(info)
        base = info.extras[self]
        if base is not None:
            base.update(self._server_attributes)

    def on_start(self, state: CallState) -> None:
        base = state.info.extras.get(self)
        if base is None:
            return
        span = self._tracer.start_span(
            state.info.rpc_method,
            kind=SpanKind.CLIENT,
            attributes=base,
            record_exception=False,
            set_status_on_exception=False,
        )
        state.span = span
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        for key, value in carrier.items():
            state.add_outgoing_metadata(key, value)

    def on_finish(self, state: CallState) -> None:
        if state.span is not None:
            self._end(state, None)
