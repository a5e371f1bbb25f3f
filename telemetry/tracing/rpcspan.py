"""Lean spans for RPCs.

An SDK span costs 20-27 us to create and end (attribute validation, locks, a ReadableSpan copy).
:class:`RpcSpan` implements the OpenTelemetry ``Span`` API with plain slots: handler code can still set
attributes, add events, record exceptions and start SDK child spans under it. The sampler in force
decides as usual (a :class:`LiveSampler`: the control plane may swap it at any time). Ended spans
go to the export pipeline as export records, plain tuples encoded on the export thread, and, when
SDK span processors are registered (tests, user processors), to them as ``ReadableSpan``.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

from telemetry.tracing.otlp_encoding import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    SpanRecord,
    SpanTemplate,
)
from telemetry.tracing.samplers import LiveSampler

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_EMPTY_CONTEXT = Context()
# The one empty TraceState of this package's spans: tested by identity, since a TraceState's truth
# value is its Python __len__.
EMPTY_TRACE_STATE = TraceState()
_STATUS_CODES = {
    StatusCode.UNSET: STATUS_UNSET,
    StatusCode.OK: STATUS_OK,
    StatusCode.ERROR: STATUS_ERROR,
}
_SPAN_KINDS = {"SERVER": SpanKind.SERVER, "CLIENT": SpanKind.CLIENT, "INTERNAL": SpanKind.INTERNAL}

# SpanContext is a tuple whose fields are read through Python properties (a function call each);
# the per-call paths index it instead (tests/unit/test_span_context_layout.py pins the layout).
TRACE_ID: Final = 0
SPAN_ID: Final = 1
IS_REMOTE: Final = 2
TRACE_FLAGS: Final = 3
TRACE_STATE: Final = 4
IS_VALID: Final = 5

_new_tuple = tuple.__new__


def valid_span_context(
    trace_id: int, span_id: int, is_remote: bool, flags: TraceFlags, state: TraceState
) -> SpanContext:
    """``SpanContext(...)`` for ids already known valid (non-zero, in range): SpanContext's
    ``__new__`` is a Python function re-checking them, on every call."""
    return _new_tuple(SpanContext, (trace_id, span_id, is_remote, flags, state, True))


SCOPE = InstrumentationScope("telemetry", "0.1.0")


class RpcSpan(trace.Span):
    """A sampled, recording span of one RPC. Not thread-safe beyond the GIL; one call owns it."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_ns",
        "_events",
        "_name",
        "_start_ns",
        "_status",
        "_status_message",
        "_template",
        "_tracer",
        "parent",
    )

    def __init__(
        self,
        tracer: RpcTracer,
        template: SpanTemplate,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        self._tracer = tracer
        self._template = template
        self._context = context
        self.parent = parent
        self._attributes = attributes
        self._events: list[tuple[str, int, Mapping[str, Any] | None]] | None = None
        self._status = STATUS_UNSET
        self._status_message: str | None = None
        self._name: str | None = None  # set only by update_name
        self._start_ns = time.time_ns()
        self._end_ns = 0

    # -- the Span API --------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_ns == 0

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_ns:
            return
        if self._attributes is None:
            self._attributes = {}
        self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._end_ns:
            return
        if self._events is None:
            self._events = []
        self._events.append((name, timestamp or time.time_ns(), dict(attributes or {})))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        pass  # RPC spans carry no links; the parent is the causal relation

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            description = status.description
            status = status.status_code
        if self._status == STATUS_OK:  # OK is final (spec)
            return
        self._status = _STATUS_CODES[status]
        self._status_message = description if status is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        event: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_ns:
            return
        self._end_ns = end_time or time.time_ns()
        self._tracer.on_end(self)

    def end_ok(self, status_code_name: str) -> None:
        """``set_attribute("rpc.response.status_code", status_code_name)`` then ``end()``: the
        tracing concern's path for a call that ended OK (no set_attribute call)."""
        if not self._end_ns:
            if self._attributes is None:
                self._attributes = {}
            self._attributes["rpc.response.status_code"] = status_code_name
            self.end()

    # -- export --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name or self._template.name

    def export_record(self) -> SpanRecord:
        """The ended span as a plain tuple for the export queue, where spans wait up to a second:
        the garbage collector stops tracking such a tuple (ints, strings, bytes, a dict of
        scalars) at its first pass, so queued spans are never promoted to older generations and
        never make the collector walk the whole heap. :func:`encode_span` takes it as arguments."""
        template = self._template
        if self._name is not None:
            template = SpanTemplate(self._name, template.kind, template.attributes)
        ctx = self._context
        trace_state = ctx[TRACE_STATE]
        return (
            template.encoded,
            ctx[TRACE_ID],
            ctx[SPAN_ID],
            self.parent[SPAN_ID] if self.parent is not None else None,
            "" if trace_state is EMPTY_TRACE_STATE or not trace_state else trace_state.to_header(),
            int(ctx[TRACE_FLAGS]),
            self._start_ns,
            self._end_ns,
            self._attributes,
            self._events,
            self._status,
            self._status_message,
        )

    def to_readable(self, resource: Resource) -> ReadableSpan:
        attributes = dict(self._template.attributes)
        if self._attributes:
            attributes.update(self._attributes)
        status_code = {STATUS_OK: StatusCode.OK, STATUS_ERROR: StatusCode.ERROR}.get(
            self._status, StatusCode.UNSET
        )
        return ReadableSpan(
            name=self.name,
            context=self._context,
            parent=self.parent,
            resource=resource,
            attributes=attributes,
            events=[Event(n, a, t) for n, t, a in self._events or ()],
            kind=_SPAN_KINDS[self._template.kind],
            status=Status(status_code, self._status_message),
            start_time=self._start_ns,
            end_time=self._end_ns,
            instrumentation_scope=SCOPE,
        )


class RpcTracer:
    """Starts :class:`RpcSpan` s under the sampler in force and hands ended ones on.

    ``sampler``: the :class:`LiveSampler` in force (it knows whether the fast path applies).
    """

    def __init__(
        self,
        sampler: LiveSampler,
        resource: Resource,
        export: Any | None,
        processors: Sequence[SpanProcessor] = (),
    ) -> None:
        # While the configured sampler is parentbased_always_on (the default) or always_on,
        # start() decides inline: follow the parent, else sample; or sample all. The flag is read
        # per call, so a live swap reaches it; samples_all belongs to the configured sampler.
        self._live = sampler
        self._samples_all = sampler.samples_all
        # A caller that read reads_parent_context just before a swap ended the fast path may pass
        # a context without the parent; only then can a context need repairing.
        self._repair_parent = sampler.may_use_fast_path
        self._resource = resource
        self._export = export  # SpanExportPipeline, or None
        self._processors = tuple(processors)
        self._getrandbits = random.getrandbits

    @property
    def reads_parent_context(self) -> bool:
        """Whether :meth:`start` passes ``parent_context`` to a sampler (else it may be bare)."""
        return not self._live.fast_path

    @property
    def sampler(self) -> LiveSampler:
        return self._live

    def start(
        self,
        template: SpanTemplate,
        parent: SpanContext | None,
        parent_context: Context | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Span:
        """A new span under ``parent`` (None: a new trace). ``parent_context`` is for the sampler;
        ``attributes`` (copied) are the span's first own attributes, beyond the template's."""
        getrandbits = self._getrandbits
        if parent is not None and parent[IS_VALID]:
            trace_id = parent[TRACE_ID]
        else:
            parent = None
            trace_id = getrandbits(128) or _nonzero(128)
        span_id = getrandbits(64) or _nonzero(64)
        if self._live.fast_path:
            if parent is None or self._samples_all or parent[TRACE_FLAGS] & TraceFlags.SAMPLED:
                state = parent[TRACE_STATE] if parent is not None else EMPTY_TRACE_STATE
                context = valid_span_context(trace_id, span_id, False, _SAMPLED, state)
                own = attributes.copy() if attributes else None
                return RpcSpan(self, template, context, parent, own)
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, parent[TRACE_STATE])
            )
        for_sampler = parent_context if parent_context is not None else _EMPTY_CONTEXT
        if parent is not None and self._repair_parent:
            for_sampler = _with_parent(for_sampler, parent)
        result = self._live.current.should_sample(  # current, not the wrapper: one call less
            for_sampler,
            trace_id,
            template.name,
            kind,
            template.attributes,
        )
        if result.decision is not Decision.RECORD_AND_SAMPLE:  # RECORD_ONLY spans are not kept
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, result.trace_state)
            )
        context = SpanContext(trace_id, span_id, False, _SAMPLED, result.trace_state)
        extra = result.attributes
        own = {k: v for k, v in extra.items() if k not in template.attributes} if extra else {}
        if attributes:
            own.update(attributes)
        return RpcSpan(self, template, context, parent, own or None)

    def on_end(self, span: RpcSpan) -> None:
        if self._export is not None:
            self._export.add(span.export_record())
        if self._processors:
            readable = span.to_readable(self._resource)
            for processor in self._processors:
                with contextlib.suppress(Exception):  # a user processor must not fail the RPC
                    processor.on_end(readable)


def _nonzero(bits: int) -> int:
    """A random id that is not the invalid id 0 (as the SDK's generator: draw again)."""
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


def _with_parent(context: Context, parent: SpanContext) -> Context:
    """``context`` with ``parent`` as its span (where parent-based samplers look for it)."""
    if trace.get_current_span(context).get_span_context() is parent:
        return context
    return trace.set_span_in_context(NonRecordingSpan(parent), context)
