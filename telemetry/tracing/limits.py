"""Span limits of RPC spans: the defaults, the bounding of values and of events' and links'
attributes, and the record of what a span dropped.

The limits (https://opentelemetry.io/docs/specs/otel/trace/sdk/#span-limits and the common
attribute limits, https://opentelemetry.io/docs/specs/otel/common/#attribute-limits) are the SDK's
:class:`~opentelemetry.sdk.trace.SpanLimits`, the same object the SDK ``TracerProvider`` of handler
spans gets. An attribute, event or link whose addition would exceed its limit is discarded and
counted (the counts reach OTLP as ``dropped_*_count``), logged at most once per span; string values
(and byte strings, and each element of a sequence) are cut to the value length limit. Only the
setters handler code calls check: an RPC span's own attributes are few and fixed, so the per-call
path stays as it was while the limits leave room for them
(:meth:`telemetry.tracing.rpctracer.RpcTracer.start`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import Attributes

from telemetry.tracing.otlp_encoding import LimitsRecord, LinkRecord, link_flags
from telemetry.tracing.spancontext import IS_REMOTE, SPAN_ID, TRACE_FLAGS, TRACE_ID, TRACE_STATE

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
OWN_ATTRIBUTES: Final = 16
OWN_VALUE_LENGTH: Final = 128
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


def report_drop(span: str, what: str) -> None:
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


class Overflow:
    """What only some spans have: links, and the counts of what the span limits dropped. A span
    with one also adds its status code through the checked setter (``RpcSpan.end_ok``)."""

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


def with_dropped(attributes: Mapping[str, Any] | None, dropped: int) -> Any:
    """``attributes`` as the SDK's readable spans carry them: a ``BoundedAttributes`` when some
    were dropped (``ReadableSpan.dropped_attributes`` and the SDK's OTLP encoder read its count)."""
    if not dropped:
        return attributes
    bounded = BoundedAttributes(attributes=attributes)
    bounded.dropped = dropped
    return bounded


def is_valid_link(context: SpanContext | None, attributes: Attributes) -> bool:
    """The SDK's rule: a link needs a context, valid or carrying attributes or a trace state."""
    return bool(context and (context.is_valid or attributes or context.trace_state))
