"""OTLP/protobuf wire encoding for RPC spans, written directly.

The SDK's encoder builds a message object per span, attribute and value: about 47 us per span on the
export thread, which holds the GIL while RPC threads wait. RPC spans are regular, so the parts fixed
per method (name, kind, constant attributes) are encoded once and each span only adds its ids, times,
dynamic attributes, events and status (and, rarely, links and what the span limits dropped): a few
microseconds. A test decodes the output with the official
``opentelemetry-proto`` classes.

Field numbers are from opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from telemetry.computed_cache import ComputedCache

_pack_fixed64 = struct.Struct("<Q").pack
_pack_ids = struct.Struct(">2sQQ2sQ").pack  # tag, trace id (high, low 64 bits), tag, span id
_pack_times = struct.Struct("<cQcQ").pack  # tag, start, tag, end (fixed64, little-endian)
_LOW_64 = (1 << 64) - 1
_pack_double = struct.Struct("<d").pack

SPAN_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


_ONE_BYTE = tuple(bytes((i,)) for i in range(128))


def varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    if 0 < value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        value += 1 << 64  # int64 two's complement: ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def field_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def field_string(field: int, value: str) -> bytes:
    return field_bytes(field, value.encode("utf-8"))


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message for a str, bool, int, float, bytes or a sequence of those."""
    if isinstance(value, str):
        return field_string(1, value)
    if isinstance(value, bool):  # before int: bool is an int
        return field_varint(2, int(value))
    if isinstance(value, int):
        return field_varint(3, value)
    if isinstance(value, float):
        return varint(4 << 3 | 1) + _pack_double(value)
    if isinstance(value, bytes):
        return field_bytes(7, value)
    if isinstance(value, Sequence):
        return field_bytes(5, b"".join(field_bytes(1, any_value(v)) for v in value))
    return field_string(1, str(value))


def encode_key_value(field: int, key: str, value: Any) -> bytes:
    return field_bytes(field, field_string(1, key) + field_bytes(2, any_value(value)))


# Encoded KeyValue entries for attribute values that repeat (status codes, peer hosts, ports),
# keyed with the value's type too: True == 1, but they encode differently.
_KEY_VALUES: ComputedCache[tuple[int, str, Any, type], bytes] = ComputedCache(
    lambda k: encode_key_value(k[0], k[1], k[2])
)


def key_value(field: int, key: str, value: Any) -> bytes:
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return _KEY_VALUES[field, key, value, kind]
    return encode_key_value(field, key, value)


def key_values(field: int, attributes: Mapping[str, Any]) -> bytes:
    """Repeated ``KeyValue`` entries as ``field`` of the enclosing message."""
    return b"".join(key_value(field, key, value) for key, value in attributes.items())


class SpanTemplate:
    """What one method's spans share, encoded once: name, kind and the constant attributes."""

    __slots__ = ("attributes", "encoded", "kind", "name")

    def __init__(self, name: str, kind: str, attributes: Mapping[str, Any]) -> None:
        self.name = name
        self.kind = kind
        self.attributes = dict(attributes)
        self.encoded = (
            field_string(5, name) + field_varint(6, SPAN_KIND[kind]) + key_values(9, attributes)
        )


EventRecord = tuple[str, int, Mapping[str, Any] | None, int]
"""A span event: name, time (ns since the epoch), attributes, attributes dropped by the limits."""
LinkRecord = tuple[int, int, str, int, Mapping[str, Any] | None, int]
"""A span link: trace id, span id, trace state header, flags (:func:`link_flags`), attributes,
attributes dropped by the limits."""
LimitsRecord = tuple[int, int, int, Sequence[LinkRecord]]
"""What only some spans carry: the attributes, events and links the span limits dropped, and the
span's links."""

SpanRecord = tuple[
    bytes,  # SpanTemplate.encoded: name, kind and constant attributes
    int,  # trace id
    int,  # span id
    int | None,  # parent span id
    str,  # trace state header
    int,  # trace flags
    int,  # start, ns since the epoch
    int,  # end
    Mapping[str, Any] | None,  # attributes beyond the template's
    Sequence[EventRecord] | None,  # events
    int,  # status code (STATUS_*)
    str | None,  # status message
    LimitsRecord | None,  # dropped counts and links; None: nothing dropped, no links
]
"""The arguments of :func:`encode_span`, as an RPC span's export record carries them."""

_HAS_IS_REMOTE = 0x100  # SpanFlags: bits 8 and 9 say whether the linked context is remote
_IS_REMOTE = 0x200


def link_flags(trace_flags: int, is_remote: bool) -> int:
    """``Link.flags``: the W3C trace flags (bits 0-7) and whether the context is remote (bits
    8-9, ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`` and ``..._IS_REMOTE_MASK``)."""
    return (trace_flags & 0xFF) | _HAS_IS_REMOTE | (_IS_REMOTE if is_remote else 0)


def encode_link(link: LinkRecord) -> bytes:
    """One ``Link`` message (not yet wrapped as a field)."""
    trace_id, span_id, trace_state, flags, attributes, dropped = link
    out = _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _LOW_64, b"\x12\x08", span_id)
    if trace_state:
        out += field_string(3, trace_state)
    if attributes:
        out += key_values(4, attributes)
    if dropped:
        out += field_varint(5, dropped)
    return out + b"\x35" + flags.to_bytes(4, "little")  # field 6, fixed32


def encode_span(
    template: bytes,
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    trace_state: str,
    trace_flags: int,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | None,
    events: Iterable[EventRecord] | None,
    status_code: int,
    status_message: str | None,
    limits: LimitsRecord | None = None,
) -> bytes:
    """One ``Span`` message (not yet wrapped as a field); ``template``: SpanTemplate.encoded.
    ``limits``: the dropped counts (fields 10, 12, 14; per event, its field 4) and the links (13)."""
    # Fields 1 and 2 (trace and span id), then 7 and 8 (start and end, fixed64), each one pack.
    ids = _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _LOW_64, b"\x12\x08", span_id)
    times = _pack_times(b"\x39", start_ns, b"\x41", end_ns)
    if trace_state:
        ids += field_string(3, trace_state)
    if parent_span_id:
        ids += b"\x22\x08" + parent_span_id.to_bytes(8, "big")
    parts = [ids, template, times]
    if attributes:
        parts.append(key_values(9, attributes))
    # What most spans lack goes through helpers, in field order (11, then 10, 12, 13, 14, then 15).
    if events:
        parts.extend(_encode_event(*event) for event in events)
    if limits is not None:
        _add_limits(parts, limits)
    if status_code:
        parts.append(_encode_status(status_code, status_message))
    parts.append(b"\x85\x01" + (trace_flags & 0xFF).to_bytes(4, "little"))  # field 16, fixed32
    return b"".join(parts)


def _encode_event(name: str, time_ns: int, attributes: Mapping[str, Any] | None, dropped: int) -> bytes:
    """One span event as field 11 of its Span (an :data:`EventRecord` as arguments)."""
    event = b"\x09" + _pack_fixed64(time_ns) + field_string(2, name)
    if attributes:
        event += key_values(3, attributes)
    if dropped:
        event += field_varint(4, dropped)
    return field_bytes(11, event)


def _add_limits(parts: list[bytes], limits: LimitsRecord) -> None:
    """Append a span's dropped counts (fields 10, 12, 14) and its links (13) to ``parts``."""
    dropped_attributes, dropped_events, dropped_links, links = limits
    if dropped_attributes:
        parts.append(field_varint(10, dropped_attributes))
    if dropped_events:
        parts.append(field_varint(12, dropped_events))
    parts.extend(field_bytes(13, encode_link(link)) for link in links)
    if dropped_links:
        parts.append(field_varint(14, dropped_links))


def _encode_status(code: int, message: str | None) -> bytes:
    """A span's ``Status`` as field 15 (set only when not UNSET)."""
    status = field_varint(3, code)
    if message:
        status = field_string(2, message) + status
    return field_bytes(15, status)


def encode_resource_header(resource_attributes: Mapping[str, Any]) -> bytes:
    """The ``Resource`` field of a ResourceSpans message, encoded once per process."""
    return field_bytes(1, key_values(1, resource_attributes))


def encode_request(resource_header: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """An ExportTraceServiceRequest with one ResourceSpans holding one ScopeSpans."""
    scope_spans = field_bytes(1, scope) + b"".join(field_bytes(2, span) for span in spans)
    resource_spans = resource_header + field_bytes(2, scope_spans)
    return field_bytes(1, resource_spans)


def encode_scope(name: str, version: str) -> bytes:
    return field_string(1, name) + field_string(2, version)


def encode_scope_spans(scope: bytes, spans: Iterable[bytes]) -> bytes:
    """One ``ScopeSpans`` message (not yet wrapped as a field): the scope and its spans."""
    return field_bytes(1, scope) + b"".join(field_bytes(2, span) for span in spans)


def encode_resource_spans(resource_header: bytes, scope_spans: Iterable[bytes]) -> bytes:
    """One ``ResourceSpans`` as field 1 of an ExportTraceServiceRequest, holding every ScopeSpans
    (encoded messages) of that resource. The OTLP data model keeps one ResourceSpans per resource,
    so RPC spans and handler spans of one process share it, each scope with its own ScopeSpans."""
    return field_bytes(1, resource_header + b"".join(field_bytes(2, s) for s in scope_spans))
