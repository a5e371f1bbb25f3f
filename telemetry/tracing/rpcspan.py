"""Lean spans for RPCs.

An SDK span costs 20-27 us to create and end (attribute validation, locks, a ReadableSpan copy).
:class:`RpcSpan` implements the OpenTelemetry ``Span`` API with plain slots: handler code can still set
attributes, add events, record exceptions and start SDK child spans under it. The sampler in force
decides as usual (:class:`~telemetry.tracing.rpctracer.RpcTracer` starts the spans). Ended spans go
to the export pipeline as export records, plain tuples encoded on the export thread, and, when SDK
span processors are registered (tests, user processors), to them as ``ReadableSpan``.

The span limits apply to the setters handler code calls (:mod:`telemetry.tracing.limits`).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from telemetry._version import SCOPE_NAME, VERSION
from telemetry.tracing.limits import (
    Overflow,
    bounded_attributes,
    is_valid_link,
    report_drop,
    truncated,
    with_dropped,
)
from telemetry.tracing.otlp_encoding import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    EventRecord,
    SpanRecord,
    SpanTemplate,
)
from telemetry.tracing.spancontext import (
    EMPTY_TRACE_STATE,
    SPAN_ID,
    TRACE_FLAGS,
    TRACE_ID,
    TRACE_STATE,
)

_STATUS_CODES = {
    StatusCode.UNSET: STATUS_UNSET,
    StatusCode.OK: STATUS_OK,
    StatusCode.ERROR: STATUS_ERROR,
}
_SPAN_KINDS = {"SERVER": SpanKind.SERVER, "CLIENT": SpanKind.CLIENT, "INTERNAL": SpanKind.INTERNAL}

SCOPE = InstrumentationScope(SCOPE_NAME, VERSION)
"""The instrumentation scope of RPC spans; handler spans from ``Telemetry.tracer`` share it."""


class SpanOwner(Protocol):
    """What a span reads from the tracer that started it (an
    :class:`~telemetry.tracing.rpctracer.RpcTracer`): the limits in force, and where it goes when
    it ends. A protocol, so that the tracer's module imports this one and not the other way."""

    limits: SpanLimits
    attribute_count: int | None  # the span attribute limits, read by every set_attribute
    value_length: int | None
    # The export queue's put when an ended span goes nowhere else (then on_end is not called).
    put_record: Callable[[SpanRecord], None] | None

    def bare(self, template: SpanTemplate) -> SpanTemplate: ...

    def on_end(self, span: RpcSpan) -> None: ...


class RpcSpan(trace.Span):
    """A sampled, recording span of one RPC. Not thread-safe beyond the GIL; one call owns it.

    Its attributes are its template's (shared by the method's spans, encoded once) followed by its
    own, never the same key in both: setting a template's key moves the template's attributes into
    the span's own (:meth:`_unbundle`)."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_ns",
        "_events",
        "_name",
        "_overflow",
        "_start_ns",
        "_status",
        "_status_message",
        "_template",
        "_tracer",
        "parent",
    )

    def __init__(
        self,
        tracer: SpanOwner,
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
        self._events: list[EventRecord] | None = None
        self._overflow: Overflow | None = None
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
        tracer = self._tracer
        if tracer.value_length is not None:
            value = truncated(value, tracer.value_length)
        attributes = self._attributes
        if attributes is None:
            attributes = self._attributes = {}
        elif key in attributes:
            attributes[key] = value  # a new value, not a new attribute: never dropped
            return
        fixed = self._template.attributes
        if key in fixed:
            self._unbundle()[key] = value
            return
        count = tracer.attribute_count
        if count is not None:
            room = count - len(fixed) - len(attributes)
            if room <= 0:  # spec: discard the attribute whose addition would exceed the limit
                self._dropped("an attribute").attributes += 1
                return
            if room == 1 and self._overflow is None:
                self._overflow = Overflow()  # full now: end_ok must check too
        attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._end_ns:
            return
        limits = self._tracer.limits
        events = self._events
        if events is None:
            events = self._events = []
        count = limits.max_events
        if count is not None and len(events) >= count:
            self._dropped("an event").events += 1
            return
        kept, dropped = bounded_attributes(
            attributes, limits.max_event_attributes, limits.max_attribute_length
        )
        if dropped:
            self._dropped("an event attribute")
        events.append((name, timestamp or time.time_ns(), kept, dropped))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Links beyond the parent (a batch's other traces, a follow-up's cause): kept within
        ``OTEL_SPAN_LINK_COUNT_LIMIT``, each with at most ``OTEL_LINK_ATTRIBUTE_COUNT_LIMIT``
        attributes."""
        if self._end_ns or not is_valid_link(context, attributes):
            return
        limits = self._tracer.limits
        overflow = self._more()
        count = limits.max_links
        if count is not None and len(overflow.links) >= count:
            self._dropped("a link").links_dropped += 1
            return
        kept, dropped = bounded_attributes(
            attributes, limits.max_link_attributes, limits.max_attribute_length
        )
        if dropped:
            self._dropped("a link attribute")
        overflow.links.append((context, kept, dropped))

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
        tracer = self._tracer
        put = tracer.put_record
        if put is not None:  # only the export queue wants it: its record, straight there
            put(self.export_record())
        else:
            tracer.on_end(self)

    def end_ok(self, status_code_name: str) -> None:
        """``set_attribute("rpc.response.status_code", status_code_name)`` then ``end()``: the
        tracing concern's path for a call that ended OK (no set_attribute call while the span has
        room; a full span, or one with links or drops, takes the checked setter). ``end``'s body
        is repeated here: a call less for every span."""
        if self._end_ns:
            return
        if self._overflow is None:
            if self._attributes is None:
                self._attributes = {}
            self._attributes["rpc.response.status_code"] = status_code_name
        else:
            self.set_attribute("rpc.response.status_code", status_code_name)
        self._end_ns = time.time_ns()
        tracer = self._tracer
        put = tracer.put_record
        if put is not None:
            put(self.export_record())
        else:
            tracer.on_end(self)

    # -- limits ----------------------------------------------------------------------------------

    def _more(self) -> Overflow:
        overflow = self._overflow
        if overflow is None:
            overflow = self._overflow = Overflow()
        return overflow

    def _dropped(self, what: str) -> Overflow:
        """The span's overflow record, after reporting (once per span) that ``what`` was dropped."""
        overflow = self._more()
        if not overflow.reported:
            overflow.reported = True
            report_drop(self.name, what)
        return overflow

    def _unbundle(self) -> dict[str, Any]:
        """Move the template's attributes to the front of the span's own, leaving the span a
        template with none (its spans then encode them one by one): for a span that sets one of
        them, or that starts under limits its template may exceed. Returns the own attributes."""
        template = self._template
        own = dict(template.attributes)
        if self._attributes:
            own.update(self._attributes)
        self._attributes = own
        self._template = self._tracer.bare(template)
        return own

    def bound_initial(self) -> None:
        """Apply the limits to what the span started with (its template's attributes, then its
        own, in order), when they may exceed them: tight limits, or attributes from a sampler.
        The span then takes the checked setter for its status code too."""
        own = self._unbundle()
        self._attributes = None
        self._more()
        for key, value in own.items():
            self.set_attribute(key, value)

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
        overflow = self._overflow
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
            None if overflow is None else overflow.record(),
        )

    def to_readable(self, resource: Resource) -> ReadableSpan:
        attributes = dict(self._template.attributes)
        if self._attributes:
            attributes.update(self._attributes)
        status_code = {STATUS_OK: StatusCode.OK, STATUS_ERROR: StatusCode.ERROR}.get(
            self._status, StatusCode.UNSET
        )
        overflow = self._overflow
        events: Any = [
            Event(name, with_dropped(a, dropped), t) for name, t, a, dropped in self._events or ()
        ]
        links: Any = ()
        if overflow is not None:
            # The SDK's readable spans carry their dropped counts in these bounded containers.
            attributes = with_dropped(attributes, overflow.attributes)
            links = [Link(c, with_dropped(a, dropped)) for c, a, dropped in overflow.links]
            if overflow.events:
                events = BoundedList.from_seq(None, events)
                events.dropped = overflow.events
            if overflow.links_dropped:
                links = BoundedList.from_seq(None, links)
                links.dropped = overflow.links_dropped
        return ReadableSpan(
            name=self.name,
            context=self._context,
            parent=self.parent,
            resource=resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=_SPAN_KINDS[self._template.kind],
            status=Status(status_code, self._status_message),
            start_time=self._start_ns,
            end_time=self._end_ns,
            instrumentation_scope=SCOPE,
        )
