"""W3C Trace Context: the rules of ``traceparent`` and ``tracestate``, pure (strings in, ints and
pairs out; no OpenTelemetry, no I/O, and no input makes them raise).

Spec: W3C Trace Context, https://www.w3.org/TR/trace-context/ (Level 1: "Trace Context HTTP
Headers Format" and "Processing Model"), with Level 2's rules where they are only stricter. The
cases of the W3C test suite (github.com/w3c/trace-context, ``test/test.py`` of its ``level-1``
branch, strict level 2) are unit tests of this module (``tests/unit/w3c_cases.py and test_w3c_*.py``).

``traceparent``: ``version-traceid-parentid-flags``, lowercase hex only. Version ``00`` is
exactly 55 characters with nothing after; ``ff`` is invalid; a higher version is read by its first
four fields when they are followed by ``-`` or the end ("Versioning of traceparent"), and what
follows is ignored. An all-zero trace id or parent id is invalid. Flags are any two hex digits;
formatting keeps only the sampled bit (Level 1: vendors set unknown flags to 0 on outgoing
requests). Optional whitespace (space, tab) around the value is not part of it (RFC 9110, 5.6.3).

``tracestate``: a list of ``key=value`` members separated by ``,`` with optional
whitespace; empty members are allowed and skipped; several header fields are one list, joined by
``,`` in order (RFC 9110, 5.3). A key is a simple key ``[a-z][a-z0-9_-*/]{0,255}`` or a
multi-tenant key ``tenant@system``, tenant ``[a-z0-9][a-z0-9_-*/]{0,240}``, system
``[a-z][a-z0-9_-*/]{0,13}``; a value is 1 to 256 printable ASCII characters (0x20-0x7E) but ``,``
and ``=``, not ending in a space. At most 32 members. One invalid member, a duplicated key or a
33rd member makes the whole tracestate invalid: it is discarded, the traceparent is kept.

Processing (:func:`parse_headers`): no ``traceparent`` or an invalid one means no parent (the
receiver starts a new trace) and the ``tracestate`` is not read; several ``traceparent`` fields are
invalid too (the W3C test suite's ``test_traceparent_duplicated``).

Where the test suite moved on: its Level 2 version accepts a tracestate with duplicated keys, and
its Level 3 draft allows ``@`` anywhere after a key's first character (``foo@``, ``foo@bar@baz``);
both are looser than Level 1, which this module follows.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
VERSION = "00"
TRACEPARENT_LENGTH = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2
MAX_MEMBERS = 32
SAMPLED = 0x01

_OWS = " \t"
# The four fields every version starts with ("Versioning of traceparent").
_FIELDS = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEYCHAR = r"[a-z0-9_\-*/]"
_KEY = rf"[a-z]{_KEYCHAR}{{0,255}}|[a-z0-9]{_KEYCHAR}{{0,240}}@[a-z]{_KEYCHAR}{{0,13}}"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(rf"({_KEY})=({_VALUE})")

Members = list[tuple[str, str]]


class Parent(NamedTuple):
    """A caller's trace context, as :func:`parse_headers` reads it."""

    trace_id: int
    span_id: int
    flags: int  # as received (all 8 bits)
    tracestate: Members | None  # [] when absent or empty; None when invalid (so discarded)


def parse_traceparent(header: object) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of one ``traceparent`` value, or None when it is invalid."""
    if not isinstance(header, str):
        return None
    header = header.strip(_OWS)  # the same string, not a copy, when there is nothing to strip
    match = _FIELDS.match(header)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex = match.groups()
    if version == VERSION:
        if len(header) != TRACEPARENT_LENGTH:
            return None
    elif version == "ff" or (len(header) > TRACEPARENT_LENGTH and header[TRACEPARENT_LENGTH] != "-"):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags_hex, 16)


def parse_tracestate(headers: str | Iterable[object]) -> Members | None:
    """The members of a ``tracestate`` (one field value, or several fields in order), in order;
    None when the tracestate is invalid and must be discarded as a whole."""
    if isinstance(headers, str):
        combined = headers
    else:
        try:
            fields = list(headers)
        except Exception:  # a carrier's odd value: invalid, never an error
            return None
        texts = [field for field in fields if isinstance(field, str)]
        if len(texts) != len(fields):
            return None
        combined = ",".join(texts)
    members: dict[str, str] = {}
    for raw in combined.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue  # empty and whitespace-only members are allowed
        match = _MEMBER.fullmatch(member)
        if match is None or len(members) == MAX_MEMBERS:
            return None
        key, value = match.groups()
        if key in members:
            return None  # a duplicated key: the list is invalid
        members[key] = value
    return list(members.items())


def parse_headers(
    traceparents: Sequence[object] | None, tracestates: Sequence[object] | None = None
) -> Parent | None:
    """The processing model over every field of both headers (a carrier may repeat a name):
    exactly one valid ``traceparent`` or no parent; ``tracestate`` read only after it."""
    if traceparents is None or len(traceparents) != 1:
        return None
    fields = parse_traceparent(traceparents[0])
    if fields is None:
        return None
    state: Members | None = [] if not tracestates else parse_tracestate(tracestates)
    trace_id, span_id, flags = fields
    return Parent(trace_id, span_id, flags, state)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """The version ``00`` value for valid ids (non-zero, 128 and 64 bits): only the sampled flag."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if flags & SAMPLED else '00'}"


def format_tracestate(members: Iterable[tuple[str, str]]) -> str:
    """The ``tracestate`` value of ``members`` (a TraceState's ``items()``), as held: at most 32,
    the right-most dropped beyond ("the right-most list-member should be removed")."""
    return ",".join(f"{key}={value}" for key, value in itertools.islice(members, MAX_MEMBERS))
