"""W3C Trace Context written and read back: traceparent formatting keeps only the sampled flag,
tracestate is written back as held (32 members at most), nothing is injected without a valid span,
dict carriers and the configured propagator; and robustness: odd values are invalid, never an
error, a failing getter is no parent, and any text parses without raising.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, default_getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from w3c_cases import BAR, TP, P, Read, T, from_metadata, from_propagator, ts

from telemetry.tracing import w3c
from telemetry.tracing.propagation import W3CPropagation, W3CTraceContextPropagator
from telemetry.tracing.setup import build_propagator

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
