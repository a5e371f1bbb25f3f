"""W3C Trace Context, case by case: the W3C test suite's cases as tables.

The cases are those of the W3C validation suite (github.com/w3c/trace-context, ``test/test.py``
on its ``level-1`` branch, at strict level 2), each header list as the harness sends it; a few
more pin the rules the suite leaves implicit (uppercase hex, flags, value lengths, empty members).
Every case runs through three readers that must agree: the parser (:func:`w3c.parse_headers`),
the ``TextMapPropagator`` that ASGI and ``opentelemetry.propagate`` use
(:class:`W3CTraceContextPropagator`, over an HTTP carrier that repeats fields and ignores the
case of names), and the gRPC metadata path (:class:`W3CPropagation`).

Where later versions of the suite differ: its Level 2 version (branch ``level-2``) lets a
tracestate with duplicated keys through, and its Level 3 draft (``main``) accepts ``@`` anywhere
in a key (``foo@``, ``t@vvvvvvvvvvvvvvv``); both are looser than Level 1, which we follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from helpers import make_config
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator, default_getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import telemetry
from telemetry.testing import SpanCapture
from telemetry.tracing import w3c
from telemetry.tracing.propagation import W3CPropagation, W3CTraceContextPropagator
from telemetry.tracing.setup import build_propagator

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


# -- the three readers --------------------------------------------------------------------------


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


def from_parser(headers: Headers) -> Read:
    parent = w3c.parse_headers(HTTP.get(headers, "traceparent"), HTTP.get(headers, "tracestate"))
    if parent is None:
        return Read(None, [])
    return Read(f"{parent.trace_id:032x}", parent.tracestate or [])


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


READERS = {"parser": from_parser, "propagator": from_propagator, "grpc metadata": from_metadata}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_w3c_suite_case(case: Case, reader: str) -> None:
    assert READERS[reader](case.headers) == expected(case)


def expected(case: Case) -> Read:
    # No tracestate is read without a valid traceparent.
    return Read(case.trace_id, (case.tracestate or []) if case.trace_id else [])


def test_every_case_is_named_once() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    suite = (sum(case.suite for case in TRACEPARENT_CASES), sum(case.suite for case in TRACESTATE_CASES))
    assert suite == (39, 41)  # every request of the W3C suite's test.py (level-1 branch)
    assert (len(TRACEPARENT_CASES), len(TRACESTATE_CASES)) == (53, 56)


# -- the SDK's propagator on the same cases ----------------------------------------------------

# What the SDK's TraceContextTextMapPropagator (opentelemetry-api 1.45, installed here) reads
# otherwise, case by case: none of the tracestate cases (this release discards a tracestate with a
# duplicated key, a bad key or a key over its length limits, as the spec says), but it continues
# the first of several traceparent fields instead of starting a new trace.
SDK_WRONG_TRACESTATE: set[str] = set()
SDK_WRONG_TRACEPARENT = {
    "two traceparent fields: a new trace",
    "two identical traceparent fields: a new trace",
}


def sdk_wrong(cases: list[Case]) -> set[str]:
    sdk = TraceContextTextMapPropagator()
    return {case.name for case in cases if from_propagator(case.headers, sdk) != expected(case)}


def test_the_sdk_propagator_on_the_tracestate_cases() -> None:
    assert sdk_wrong(TRACESTATE_CASES) == SDK_WRONG_TRACESTATE
    assert len(SDK_WRONG_TRACESTATE) == 0  # of 56 (41 of them the W3C suite's)


def test_the_sdk_propagator_on_the_traceparent_cases() -> None:
    assert sdk_wrong(TRACEPARENT_CASES) == SDK_WRONG_TRACEPARENT
    headers = [("traceparent", f"00-{T[:-1]}1-{P}-01"), ("traceparent", TP)]
    assert from_propagator(headers, TraceContextTextMapPropagator()).trace_id == f"{T[:-1]}1"
    assert from_propagator(headers).trace_id is None


# -- formatting, carriers, robustness -------------------------------------------------------------


def test_formatting_keeps_the_sampled_flag_only() -> None:
    trace_id, span_id = int(T, 16), int(P, 16)
    for flags, written in ((0x00, "00"), (0x01, "01"), (0x02, "00"), (0x03, "01"), (0xFF, "01")):
        assert w3c.format_traceparent(trace_id, span_id, flags) == f"00-{T}-{P}-{written}"
        context = SpanContext(trace_id, span_id, True, TraceFlags(flags))
        headers: list[tuple[str, str]] = []
        W3CPropagation().inject(context, headers, Context())
        carrier: dict[str, str] = {}
        W3CTraceContextPropagator().inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
        assert headers == [("traceparent", f"00-{T}-{P}-{written}")]
        assert carrier == {"traceparent": f"00-{T}-{P}-{written}"}
    fields = w3c.parse_traceparent(f"cc-{T}-{P}-ff-future")
    assert fields is not None and w3c.format_traceparent(*fields) == f"00-{T}-{P}-01"  # downgraded


def test_tracestate_is_written_back_as_held() -> None:
    state = TraceState([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7"), ("foo", "  1")])
    context = SpanContext(int(T, 16), int(P, 16), True, TraceFlags(1), state)
    carrier: dict[str, str] = {}
    W3CTraceContextPropagator().inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    headers: list[tuple[str, str]] = []
    W3CPropagation().inject(context, headers, Context())
    value = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,foo=  1"
    assert carrier == {"traceparent": TP, "tracestate": value}
    assert headers == [("traceparent", TP), ("tracestate", value)]
    assert from_metadata(headers) == Read(T, list(state.items()))  # and read back the same
    assert from_propagator(list(carrier.items())) == Read(T, list(state.items()))


def test_tracestate_is_written_with_32_members_at_most() -> None:
    assert w3c.format_tracestate(BAR) == ",".join(f"{k}={v}" for k, v in BAR[:32])  # right-most cut
    assert w3c.format_tracestate([]) == ""
    full = TraceState(BAR[:32])
    context = SpanContext(int(T, 16), int(P, 16), True, TraceFlags(1), full)
    carrier: dict[str, str] = {}
    W3CTraceContextPropagator().inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    assert from_propagator(list(carrier.items())) == Read(T, BAR[:32])


def test_nothing_is_injected_without_a_valid_span() -> None:
    carrier: dict[str, str] = {}
    W3CTraceContextPropagator().inject(carrier, Context())
    assert carrier == {}
    assert W3CTraceContextPropagator().fields == {"traceparent", "tracestate"}


def test_a_dict_carrier_with_a_list_of_traceparents_is_a_new_trace() -> None:
    # The default getter returns a list value whole: an HTTP framework's repeated header.
    propagator = W3CTraceContextPropagator()
    carrier: dict[str, Any] = {"traceparent": [TP, TP], "tracestate": "foo=1"}
    assert not trace.get_current_span(propagator.extract(carrier)).get_span_context().is_valid
    carrier = {"traceparent": [TP], "tracestate": ["foo=1", "bar=2"]}
    parent = trace.get_current_span(
        propagator.extract(carrier, getter=default_getter)
    ).get_span_context()
    assert parent.is_valid and list(parent.trace_state.items()) == [("foo", "1"), ("bar", "2")]


def test_build_propagator_uses_the_w3c_propagator() -> None:
    composite = build_propagator(("tracecontext", "baggage"))
    headers = [*ts("foo=1,foo=2"), ("baggage", "user=ada")]
    assert from_propagator(headers, composite) == Read(T, [])
    assert from_propagator([("traceparent", TP)] * 2, composite) == Read(None, [])
    assert "traceparent" in composite.fields and "baggage" in composite.fields


class BrokenGetter(Getter[Any]):
    def get(self, carrier: Any, key: str) -> list[str] | None:
        raise RuntimeError("a broken carrier")

    def keys(self, carrier: Any) -> list[str]:
        return []


ODD: Sequence[Any] = (None, b"00", 0, 1.5, object(), [TP], ("foo=1",), [b"foo=1"], [None], "\x00" * 60)


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_odd_values_are_invalid_never_an_error(value: Any) -> None:
    assert w3c.parse_traceparent(value) is None
    assert w3c.parse_tracestate(value) is None or isinstance(value, (str, list, tuple))
    assert w3c.parse_headers([value], [value]) is None or value == [TP]
    context = W3CTraceContextPropagator().extract({"traceparent": value, "tracestate": value})
    assert trace.get_current_span(context).get_span_context().is_valid is (value == [TP])
    W3CPropagation().extract([("traceparent", value), ("tracestate", value)])


def test_a_failing_getter_is_no_parent() -> None:
    context = W3CTraceContextPropagator().extract({}, getter=BrokenGetter())
    assert not trace.get_current_span(context).get_span_context().is_valid


@given(st.text(max_size=120), st.lists(st.text(max_size=80), max_size=4))
def test_any_text_parses_without_raising(traceparent: str, tracestates: list[str]) -> None:
    for text in (traceparent, f"00-{T}-{P}-01{traceparent}", f"cc-{T}-{P}-01{traceparent}"):
        fields = w3c.parse_traceparent(text)
        assert fields is None or fields[:2] == (int(T, 16), int(P, 16))
    members = w3c.parse_tracestate(tracestates)
    if members is not None:
        assert len(members) <= w3c.MAX_MEMBERS and len({key for key, _ in members}) == len(members)
        assert w3c.parse_tracestate(w3c.format_tracestate(members)) == members  # round trip
    W3CPropagation().extract([("traceparent", traceparent)] + [("tracestate", t) for t in tracestates])


def test_tracestate_members_in_and_out() -> None:
    members = BAR[:3]
    text = w3c.format_tracestate(iter(members))
    assert text == "bar01=01,bar02=02,bar03=03"
    assert w3c.parse_tracestate(text) == list(members)
    assert w3c.parse_tracestate([text, ""]) == list(members)


# -- HTTP through the ASGI middleware (the handle's propagator) -----------------------------------


async def _asgi_request(fields: Headers) -> Any:
    """One request with header ``fields`` (names may repeat) through ``handle.asgi``: its span."""
    spans = SpanCapture()
    handle = telemetry.Telemetry(make_config("web"), span_processors=[spans.processor])

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"", "scheme": "http",
             "headers": [(k.encode(), v.encode()) for k, v in fields],
             "client": ("10.0.0.9", 5555), "server": ("127.0.0.1", 8080)}  # fmt: skip
    try:
        await handle.asgi(app)(scope, receive, send)
        (span,) = spans.spans()
        return span
    finally:
        handle.shutdown()


async def test_http_two_traceparent_fields_start_a_new_trace() -> None:
    span = await _asgi_request([("traceparent", f"00-{T[:-1]}1-{P}-01"), ("Traceparent", TP)])
    assert span.parent is None and f"{span.context.trace_id:032x}" not in (T, f"{T[:-1]}1")


async def test_http_invalid_tracestate_is_dropped_and_fields_are_one_list() -> None:
    span = await _asgi_request(ts("foo=1", "foo=2", traceparent=TP))  # sampled: a span to look at
    assert f"{span.parent.trace_id:032x}" == T and not span.parent.trace_state
    span = await _asgi_request(ts("congo=1", "rojo=2", traceparent=TP))
    assert list(span.parent.trace_state.items()) == [("congo", "1"), ("rojo", "2")]
    assert list(span.context.trace_state.items()) == [("congo", "1"), ("rojo", "2")]  # carried on
