"""Lean spans for RPCs.

An SDK span costs 20-27 us to create and end (attribute validation, locks, a ReadableSpan copy).
:class:`RpcSpan` implements the OpenTelemetry ``Span`` API with plain slots: handler code can still set
attributes, add events, record exceptions and start SDK child spans under it. The sampler in force
decides as usual (a :class:`LiveSampler`: the control plane may swap it at any time). Ended spans
go to the export pipeline as export records, plain tuples encoded on the export thread, and, when
SDK span processors are registered (tests, user processors), to them as ``ReadableSpan``.

Span limits (https://opentelemetry.io/docs/specs/otel/trace/sdk/#span-limits and the common
attribute limits, https://opentelemetry.io/docs/specs/otel/common/#attribute-limits) are the SDK's
:class:`~opentelemetry.sdk.trace.SpanLimits`, the same object the SDK ``TracerProvider`` of handler
spans gets. An attribute, event or link whose addition would exceed its limit is discarded and
counted (the counts reach OTLP as ``dropped_*_count``), logged at most once per span; string values
(and byte strings, and each element of a sequence) are cut to the value length limit. Only the
setters handler code calls check: an RPC span's own attributes are few and fixed, so the per-call
path stays as it was while the limits leave room for them (:meth:`RpcTracer.start`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import Attributes

from telemetry._version import SCOPE_NAME, VERSION
from telemetry.tracing.otlp_encoding import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    EventRecord,
    LimitsRecord,
    LinkRecord,
    SpanRecord,
    SpanTemplate,
    link_flags,
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
_log = logging.getLogger("telemetry.tracing")

DEFAULT_LIMITS: Final = SpanLimits(
    max_attributes=128,
    max_events=128,
    max_links=128,
    max_span_attributes=128,
    max_event_attributes=128,
    max_link_attributes=128,
    max_attribute_length=SpanLimits.UNSET,
    max_span_attribute_length=SpanLimits.UNSET,
)
"""The spec's defaults (128 of each, no value length limit), without reading the environment
(``TelemetryConfig`` does that; ``telemetry.tracing.setup.build_span_limits`` builds the limits
in force)."""

# An RPC span sets a few attributes itself (its template's, up to 4, the peer's 2, the status code
# and error.type) with values of at most ~110 characters (a peer address): while the limits leave
# this much room, only the setters handler code calls need to check.
_OWN_ATTRIBUTES: Final = 16
_OWN_VALUE_LENGTH: Final = 128
_MAX_TEMPLATES = 10_000  # per-tracer caches of templates stripped of their attributes
_DROP_LOG_INTERVAL = 60.0  # seconds between two "span limits dropped ..." warnings
_last_drop_log = -_DROP_LOG_INTERVAL


def truncated(value: Any, limit: int) -> Any:
    """An attribute value within the value length limit (spec, "Attribute Limits"): a string cut to
    ``limit`` characters, a byte string to ``limit`` bytes, each element of a sequence or value of a
    mapping likewise (a sequence becomes a tuple, as the SDK makes it); anything else as it is."""
    if isinstance(value, str | bytes):
        return value[:limit] if len(value) > limit else value
    if isinstance(value, Sequence):
        return tuple(truncated(item, limit) for item in value)
    if isinstance(value, Mapping):
        return {key: truncated(item, limit) for key, item in value.items()}
    return value


def bounded_attributes(
    attributes: Attributes, count: int | None, length: int | None
) -> tuple[dict[str, Any], int]:
    """(the attributes an event or link keeps, how many it dropped): the first ``count``, values
    cut to ``length`` (None: no limit)."""
    if not attributes:
        return {}, 0
    if length is None and (count is None or len(attributes) <= count):
        return dict(attributes), 0
    kept: dict[str, Any] = {}
    for key, value in attributes.items():
        if count is not None and len(kept) >= count:
            break
        kept[key] = value if length is None else truncated(value, length)
    return kept, len(attributes) - len(kept)


def _report_drop(span: str, what: str) -> None:
    """Spec: a message when the limits discard something, at most once per span; here also at most
    once a minute, or a handler that always overflows would write a line per call."""
    global _last_drop_log
    now = time.monotonic()
    if now - _last_drop_log >= _DROP_LOG_INTERVAL:
        _last_drop_log = now
        _log.warning(
            "span %r: %s discarded by the span limits (OTEL_SPAN_*_LIMIT, OTEL_*_ATTRIBUTE_COUNT_LIMIT);"
            " counted in its dropped counts; logged at most once a minute",
            span,
            what,
        )


def valid_span_context(
    trace_id: int, span_id: int, is_remote: bool, flags: TraceFlags, state: TraceState
) -> SpanContext:
    """``SpanContext(...)`` for ids already known valid (non-zero, in range): SpanContext's
    ``__new__`` is a Python function re-checking them, on every call."""
    return _new_tuple(SpanContext, (trace_id, span_id, is_remote, flags, state, True))


SCOPE = InstrumentationScope(SCOPE_NAME, VERSION)
"""The instrumentation scope of RPC spans; handler spans from ``Telemetry.tracer`` share it."""


class _Overflow:
    """What only some spans have: links, and the counts of what the span limits dropped. A span
    with one also adds its status code through the checked setter (:meth:`RpcSpan.end_ok`)."""

    __slots__ = ("attributes", "events", "links", "links_dropped", "reported")

    def __init__(self) -> None:
        self.attributes = 0  # dropped
        self.events = 0  # dropped
        self.links: list[tuple[SpanContext, dict[str, Any], int]] = []
        self.links_dropped = 0
        self.reported = False

    def record(self) -> LimitsRecord:
        links: list[LinkRecord] = []
        for context, attributes, dropped in self.links:
            state = context[TRACE_STATE]
            links.append(
                (
                    context[TRACE_ID],
                    context[SPAN_ID],
                    state.to_header() if state else "",
                    link_flags(int(context[TRACE_FLAGS]), bool(context[IS_REMOTE])),
                    attributes or None,
                    dropped,
                )
            )
        return (self.attributes, self.events, self.links_dropped, tuple(links))


def _with_dropped(attributes: Mapping[str, Any] | None, dropped: int) -> Any:
    """``attributes`` as the SDK's readable spans carry them: a ``BoundedAttributes`` when some
    were dropped (``ReadableSpan.dropped_attributes`` and the SDK's OTLP encoder read its count)."""
    if not dropped:
        return attributes
    bounded = BoundedAttributes(attributes=attributes)
    bounded.dropped = dropped
    return bounded


def _is_valid_link(context: SpanContext | None, attributes: Attributes) -> bool:
    """The SDK's rule: a link needs a context, valid or carrying attributes or a trace state."""
    return bool(context and (context.is_valid or attributes or context.trace_state))


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
        self._events: list[EventRecord] | None = None
        self._overflow: _Overflow | None = None
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
                self._overflow = _Overflow()  # full now: end_ok must check too
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
        if self._end_ns or not _is_valid_link(context, attributes):
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
        self._tracer.on_end(self)

    def end_ok(self, status_code_name: str) -> None:
        """``set_attribute("rpc.response.status_code", status_code_name)`` then ``end()``: the
        tracing concern's path for a call that ended OK (no set_attribute call while the span has
        room; a full span, or one with links or drops, takes the checked setter)."""
        if not self._end_ns:
            if self._overflow is None:
                if self._attributes is None:
                    self._attributes = {}
                self._attributes["rpc.response.status_code"] = status_code_name
            else:
                self.set_attribute("rpc.response.status_code", status_code_name)
            self.end()

    # -- limits ----------------------------------------------------------------------------------

    def _more(self) -> _Overflow:
        overflow = self._overflow
        if overflow is None:
            overflow = self._overflow = _Overflow()
        return overflow

    def _dropped(self, what: str) -> _Overflow:
        """The span's overflow record, after reporting (once per span) that ``what`` was dropped."""
        overflow = self._more()
        if not overflow.reported:
            overflow.reported = True
            _report_drop(self.name, what)
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
            Event(name, _with_dropped(a, dropped), t) for name, t, a, dropped in self._events or ()
        ]
        links: Any = ()
        if overflow is not None:
            # The SDK's readable spans carry their dropped counts in these bounded containers.
            attributes = _with_dropped(attributes, overflow.attributes)
            links = [Link(c, _with_dropped(a, dropped)) for c, a, dropped in overflow.links]
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


class RpcTracer:
    """Starts :class:`RpcSpan` s under the sampler in force and hands ended ones on.

    ``sampler``: the :class:`LiveSampler` in force (it knows whether the fast path applies).
    ``limits``: the span limits, the SDK's object (give the SDK ``TracerProvider`` the same one).
    """

    def __init__(
        self,
        sampler: LiveSampler,
        resource: Resource,
        export: Any | None,
        processors: Sequence[SpanProcessor] = (),
        limits: SpanLimits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        # The span attribute limits, read by every set_attribute.
        self.attribute_count: int | None = limits.max_span_attributes
        self.value_length: int | None = limits.max_span_attribute_length
        self._bare: dict[SpanTemplate, SpanTemplate] = {}
        count, length = self.attribute_count, self.value_length
        if (count is not None and count < _OWN_ATTRIBUTES) or (
            length is not None and length < _OWN_VALUE_LENGTH
        ):
            # Limits tighter than an RPC span's own attributes: every span is bounded as it
            # starts (rarely configured; the usual start stays free of checks).
            self.start = self._start_bounded  # type: ignore[method-assign]
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

    def template(self, name: str, kind: str, attributes: Mapping[str, Any]) -> SpanTemplate:
        """A method's :class:`SpanTemplate`, its values within the value length limit (a long
        method name or target would exceed one; counts are bounded per span)."""
        length = self.limits.max_span_attribute_length
        if length is not None:
            attributes = {key: truncated(value, length) for key, value in attributes.items()}
        return SpanTemplate(name, kind, attributes)

    def bare(self, template: SpanTemplate) -> SpanTemplate:
        """``template`` without attributes (cached), for spans that carry them as their own."""
        bare = self._bare.get(template)
        if bare is None:
            if len(self._bare) >= _MAX_TEMPLATES:
                self._bare.clear()
            bare = self._bare[template] = SpanTemplate(template.name, template.kind, {})
        return bare

    def _start_bounded(
        self,
        template: SpanTemplate,
        parent: SpanContext | None,
        parent_context: Context | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Span:
        """:meth:`start` under limits tighter than an RPC span's own attributes."""
        span = RpcTracer.start(self, template, parent, parent_context, kind, attributes)
        if type(span) is RpcSpan:
            span.bound_initial()
        return span

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
        span = RpcSpan(self, template, context, parent, own or None)
        if extra and self._may_exceed(template, own):  # a sampler's: any number, any length
            span.bound_initial()
        return span

    def _may_exceed(self, template: SpanTemplate, own: dict[str, Any]) -> bool:
        """Whether a span starting with these attributes could exceed the limits before it ends
        (the status code and error.type still to come), so it must be bounded from its start."""
        count = self.attribute_count
        if count is not None and len(template.attributes) + len(own) + 2 > count:
            return True
        length = self.value_length
        return length is not None and any(truncated(v, length) is not v for v in own.values())

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
