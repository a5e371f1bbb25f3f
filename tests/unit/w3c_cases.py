"""W3C Trace Context cases as tables, and the readers that must agree on them.

The cases are those of the W3C validation suite (github.com/w3c/trace-context, ``test/test.py``
on its ``level-1`` branch, at strict level 2), each header list as the harness sends it; a few
more pin the rules the suite leaves implicit (uppercase hex, flags, value lengths, empty members).
The readers: the ``TextMapPropagator`` that ASGI and ``opentelemetry.propagate`` use
(:class:`W3CTraceContextPropagator`, over an HTTP carrier that repeats fields and ignores the case
of names) and the gRPC metadata path (:class:`W3CPropagation`); ``expected`` is what a reader must
read of a case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.trace import SpanContext

from telemetry.tracing.propagation import W3CPropagation, W3CTraceContextPropagator

T = "12345678901234567890123456789012"
P = "1234567890123456"
TP = f"00-{T}-{P}-01"
TP_NOT_SAMPLED = f"00-{T}-{P}-00"  # the suite's traceparent in its tracestate cases

Headers = list[tuple[str, str]]
Members = list[tuple[str, str]]


@dataclass(frozen=True)
class Case:
    name: str
    headers: Headers
    trace_id: str | None  # the continued trace, or None: no parent (a new trace)
    tracestate: Members | None = None  # what is kept; [] when discarded (None: nothing sent)
    suite: bool = True  # one of the W3C suite's cases (False: ours, beyond it)

    def __str__(self) -> str:
        return self.name


def beyond(*cases: Case) -> list[Case]:
    """Cases of ours, for rules the W3C suite leaves implicit."""
    return [replace(case, suite=False) for case in cases]


def tp(value: str) -> Case:
    """A traceparent the suite expects to be ignored."""
    return Case(f"traceparent {value!r} is invalid", [("traceparent", value)], None)


def tp_ok(value: str, name: str = "") -> Case:
    return Case(name or f"traceparent {value!r} is continued", [("traceparent", value)], T)


TRACEPARENT_CASES = [
    # test_both_traceparent_and_tracestate_missing, test_traceparent_included_tracestate_missing
    Case("no headers", [], None),
    tp_ok(TP),
    # test_traceparent_duplicated
    Case(
        "two traceparent fields: a new trace",
        [("traceparent", f"00-{T[:-1]}1-{P}-01"), ("traceparent", TP)],
        None,
    ),
    *beyond(Case("two identical traceparent fields: a new trace", [("traceparent", TP)] * 2, None)),
    # test_traceparent_header_name, test_traceparent_header_name_valid_casing
    Case("header named trace-parent", [("trace-parent", TP)], None),
    Case("header named trace.parent", [("trace.parent", TP)], None),
    Case("header named TraceParent", [("TraceParent", TP)], T),
    Case("header named TrAcEpArEnT", [("TrAcEpArEnT", TP)], T),
    Case("header named TRACEPARENT", [("TRACEPARENT", TP)], T),
    # test_traceparent_version_0x00: version 00 is 55 characters, nothing after
    tp(f"{TP}."),
    tp(f"{TP}-what-the-future-will-be-like"),
    # test_traceparent_version_0xcc: a future version is read by its first four fields
    tp_ok(f"cc-{T}-{P}-01"),
    tp_ok(f"cc-{T}-{P}-01-what-the-future-will-be-like"),
    tp(f"cc-{T}-{P}-01.what-the-future-will-be-like"),
    # test_traceparent_version_0xff, _illegal_characters, _too_long, _too_short
    tp(f"ff-{T}-{P}-01"),
    tp(f".0-{T}-{P}-01"),
    tp(f"0.-{T}-{P}-01"),
    tp(f"000-{T}-{P}-01"),
    tp(f"0000-{T}-{P}-01"),
    tp(f"0-{T}-{P}-01"),
    # test_traceparent_trace_id_all_zero, _illegal_characters, _too_long, _too_short
    tp(f"00-{'0' * 32}-{P}-01"),
    tp(f"00-.{T[1:]}-{P}-01"),
    tp(f"00-{T[:-1]}.-{P}-01"),
    tp(f"00-{T}3-{P}-01"),
    tp(f"00-{T[:-1]}-{P}-01"),
    # test_traceparent_parent_id_all_zero, _illegal_characters, _too_long, _too_short
    tp(f"00-{T}-{'0' * 16}-01"),
    tp(f"00-{T}-.{P[1:]}-01"),
    tp(f"00-{T}-{P[:-1]}.-01"),
    tp(f"00-{T}-{P}7-01"),
    tp(f"00-{T}-{P[:-1]}-01"),
    # test_traceparent_trace_flags_illegal_characters, _too_long, _too_short
    tp(f"00-{T}-{P}-.0"),
    tp(f"00-{T}-{P}-0."),
    tp(f"00-{T}-{P}-001"),
    tp(f"00-{T}-{P}-1"),
    # test_traceparent_ows_handling
    tp_ok(f" {TP}"),
    tp_ok(f"\t{TP}"),
    tp_ok(f"{TP} "),
    tp_ok(f"{TP}\t"),
    tp_ok(f"\t {TP} \t"),
    # TraceContext2Test.test_propagates_random_flag (the flag is read; see test_formatting)
    tp_ok(f"00-{T}-{P}-02"),
    # Beyond the suite: lowercase hex only, any flags, the future-version rules, other whitespace
    *beyond(
        tp(f"00-{T.upper().replace('1', 'A')}-{P}-01"),
        tp(f"00-{T}-{P.replace('1', 'A')}-01"),
        tp(f"00-{T}-{P}-0A"),
        tp(f"CC-{T}-{P}-01"),
        tp_ok(f"00-{T}-{P}-ff", "flags ff are read"),
        tp_ok(f"cc-{T}-{P}-01-", "a future version ending in a dash"),
        tp(f"cc-{T}-{P}-0"),
        tp(f"cc-{T}-{P}"),
        tp(f"{TP},{TP}"),  # two fields joined by an HTTP server (RFC 9110 5.3)
        tp(f"\n{TP}"),  # OWS is space and tab only
        tp(f"00_{T}-{P}-01"),
        tp(""),
        tp(" "),
    ),
]


def ts(*values: str, traceparent: str = TP_NOT_SAMPLED) -> Headers:
    return [("traceparent", traceparent)] + [("tracestate", value) for value in values]


def ts_case(name: str, headers: Headers, kept: Members) -> Case:
    return Case(name, headers, T, kept)


FOO = [("foo", "1")]
KEY = "".join(map(chr, range(0x61, 0x7B))) + "0123456789_-*/"
KEY_WITH_VENDOR = KEY + "@a-z0-9_-*/"
VALUE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
BAR = [(f"bar{n:02d}", f"{n:02d}") for n in range(1, 34)]
BARS = [",".join(f"{k}={v}" for k, v in BAR[start : start + 10]) for start in (0, 10, 20)]

TRACESTATE_CASES = [
    # test_tracestate_included_traceparent_missing: tracestate alone is discarded
    Case("tracestate without traceparent", [("tracestate", "foo=1")], None),
    Case("tracestate without traceparent (2)", [("tracestate", "foo=1,bar=2")], None),
    *beyond(
        Case("tracestate with an invalid traceparent", ts("foo=1", traceparent=f"ff-{T}-{P}-01"), None)
    ),
    # test_tracestate_included_traceparent_included
    ts_case("foo and bar", ts("foo=1,bar=2"), [("foo", "1"), ("bar", "2")]),
    # test_tracestate_header_name, test_tracestate_header_name_valid_casing
    ts_case("header named trace-state", [("traceparent", TP_NOT_SAMPLED), ("trace-state", "foo=1")], []),
    ts_case("header named trace.state", [("traceparent", TP_NOT_SAMPLED), ("trace.state", "foo=1")], []),
    ts_case("header named TraceState", [("traceparent", TP_NOT_SAMPLED), ("TraceState", "foo=1")], FOO),
    ts_case("header named TrAcEsTaTe", [("traceparent", TP_NOT_SAMPLED), ("TrAcEsTaTe", "foo=1")], FOO),
    ts_case("header named TRACESTATE", [("traceparent", TP_NOT_SAMPLED), ("TRACESTATE", "foo=1")], FOO),
    # test_tracestate_empty_header
    ts_case("an empty tracestate", ts(""), []),
    ts_case("foo=1 then an empty field", ts("foo=1", ""), FOO),
    ts_case("an empty field then foo=1", ts("", "foo=1"), FOO),
    # test_tracestate_multiple_headers_different_keys: one list, in order
    ts_case(
        "three fields are one list",
        ts("foo=1,bar=2", "rojo=1,congo=2", "baz=3"),
        [("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")],
    ),
    # test_tracestate_duplicated_keys (Level 1: the whole tracestate is invalid)
    ts_case("duplicated key, same value", ts("foo=1,foo=1"), []),
    ts_case("duplicated key, other value", ts("foo=1,foo=2"), []),
    ts_case("duplicated key across fields, same value", ts("foo=1", "foo=1"), []),
    ts_case("duplicated key across fields, other value", ts("foo=1", "foo=2"), []),
    # test_tracestate_all_allowed_characters
    ts_case("every key and value character", ts(f"{KEY}={VALUE}"), [(KEY, VALUE)]),
    ts_case("every vendor key character", ts(f"{KEY_WITH_VENDOR}={VALUE}"), [(KEY_WITH_VENDOR, VALUE)]),
    # test_tracestate_ows_handling
    ts_case(
        "OWS around commas",
        ts("foo=1 \t , \t bar=2, \t baz=3"),
        [("foo", "1"), ("bar", "2"), ("baz", "3")],
    ),
    ts_case(
        "tabs around commas",
        ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3"),
        [("foo", "1"), ("bar", "2"), ("baz", "3")],
    ),
    ts_case("leading space", ts(" foo=1"), FOO),
    ts_case("leading tab", ts("\tfoo=1"), FOO),
    ts_case("trailing space", ts("foo=1 "), FOO),
    ts_case("trailing tab", ts("foo=1\t"), FOO),
    ts_case("OWS both sides", ts("\t foo=1 \t"), FOO),
    # test_tracestate_key_illegal_characters
    ts_case("key with a space", ts("foo =1"), []),
    ts_case("uppercase key", ts("FOO=1"), []),
    ts_case("key with a dot", ts("foo.bar=1"), []),
    # test_tracestate_key_illegal_vendor_format
    ts_case("key ending in @", ts("foo@=1,bar=2"), []),
    ts_case("key starting with @", ts("@foo=1,bar=2"), []),
    ts_case("key with @@", ts("foo@@bar=1,bar=2"), []),
    ts_case("key with two @", ts("foo@bar@baz=1,bar=2"), []),
    # test_tracestate_member_count_limit
    ts_case("32 members", ts(*BARS, "bar31=31,bar32=32"), BAR[:32]),
    ts_case("33 members", ts(*BARS, "bar31=31,bar32=32,bar33=33"), []),
    # test_tracestate_key_length_limit
    ts_case("key of 256", ts("foo=1", "z" * 256 + "=1"), [*FOO, ("z" * 256, "1")]),
    ts_case("key of 257", ts("foo=1", "z" * 257 + "=1"), []),
    ts_case(
        "tenant 241, system 14",
        ts("foo=1", "t" * 241 + "@" + "v" * 14 + "=1"),
        [*FOO, ("t" * 241 + "@" + "v" * 14, "1")],
    ),
    ts_case("tenant 242", ts("foo=1", "t" * 242 + "@v=1"), []),
    ts_case("system 15", ts("foo=1", "t@" + "v" * 15 + "=1"), []),
    # test_tracestate_value_illegal_characters
    ts_case("value with =", ts("foo=bar=baz"), []),
    ts_case("empty value", ts("foo=,bar=3"), []),
    # Beyond the suite: value lengths and characters, empty members, the other key rules
    *beyond(
        ts_case("value of 256", ts("foo=" + "v" * 256), [("foo", "v" * 256)]),
        ts_case("value of 257", ts("foo=" + "v" * 257), []),
        ts_case("leading spaces of a value are kept", ts("foo=  1"), [("foo", "  1")]),
        ts_case("value of spaces only", ts("foo=   ,bar=2"), []),
        ts_case("value with a tab", ts("foo=a\tb"), []),
        ts_case("value outside ASCII", ts("foo=caf\u00e9"), []),
        ts_case("member without =", ts("foo,bar=2"), []),
        ts_case("one bad member spoils the rest", ts("foo=1", "bar=2,Baz=3"), []),
        ts_case("empty members are skipped", ts(",, foo=1 ,\t, ,", " , "), FOO),
        ts_case("32 members and empty ones", ts(*BARS, ",bar31=31,,bar32=32,,"), BAR[:32]),
        ts_case("simple key starting with a digit", ts("1foo=1"), []),
        ts_case("tenant starting with a digit", ts("1foo@bar=1"), [("1foo@bar", "1")]),
        ts_case("system starting with a digit", ts("foo@1bar=1"), []),
        ts_case(
            "a future traceparent keeps its tracestate", ts("foo=1", traceparent=f"cc-{T}-{P}-01-x"), FOO
        ),
    ),
]

CASES = TRACEPARENT_CASES + TRACESTATE_CASES


class HttpGetter(Getter[Headers]):
    """An HTTP carrier: field names in any case, a name may repeat (every value, in order)."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [value for name, value in carrier if name.lower() == key]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


HTTP = HttpGetter()


@dataclass(frozen=True)
class Read:
    trace_id: str | None
    tracestate: Members


def _read(parent: SpanContext | None) -> Read:
    if parent is None or not parent.is_valid:
        return Read(None, [])
    return Read(f"{parent.trace_id:032x}", list(parent.trace_state.items()))


def from_propagator(headers: Headers, propagator: TextMapPropagator | None = None) -> Read:
    context = (propagator or W3CTraceContextPropagator()).extract(headers, getter=HTTP)
    return _read(trace.get_current_span(context).get_span_context())


def from_metadata(headers: Headers) -> Read:
    metadata = [(name.lower(), value) for name, value in headers]  # grpc lower-cases keys
    parent, context = W3CPropagation().extract(metadata)
    assert trace.get_current_span(context).get_span_context() == (parent or trace.INVALID_SPAN_CONTEXT)
    return _read(parent)


def expected(case: Case) -> Read:
    # No tracestate is read without a valid traceparent.
    return Read(case.trace_id, (case.tracestate or []) if case.trace_id else [])
