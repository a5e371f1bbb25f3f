"""Span limits on RPC spans and on the SDK spans handler code makes (trace SDK spec, "Span Limits";
common spec, "Attribute Limits"): what is kept, what is dropped and counted, and the counts in the
OTLP the direct encoder writes, decoded with the official opentelemetry-proto classes."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import make_config
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState

import telemetry
from telemetry.config import SPAN_LIMIT_FIELDS
from telemetry.testing import SpanCapture
from telemetry.tracing import rpcspan
from telemetry.tracing.otlp_encoding import SpanTemplate, encode_span
from telemetry.tracing.rpcspan import DEFAULT_LIMITS, RpcSpan, RpcTracer, truncated
from telemetry.tracing.samplers import LiveSampler, RateLimitingSampler, sampler_from_name
from telemetry.tracing.setup import build_span_limits

TEMPLATE = SpanTemplate(
    "pkg.Svc/Call", "SERVER", {"rpc.system.name": "grpc", "rpc.method": "pkg.Svc/Call"}
)
PEER = {"network.peer.address": "10.0.0.1", "network.peer.port": 5000}
LINKED = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1")]),
)


class Records:
    """What the export pipeline gets: ended spans' records."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def add(self, record: tuple[Any, ...]) -> None:
        self.records.append(record)


def limits(**values: int) -> SpanLimits:
    """DEFAULT_LIMITS with ``values`` changed (None-free: every limit explicit)."""
    settings: dict[str, int] = {
        "max_attributes": 128,
        "max_events": 128,
        "max_links": 128,
        "max_span_attributes": 128,
        "max_event_attributes": 128,
        "max_link_attributes": 128,
        "max_attribute_length": SpanLimits.UNSET,
        "max_span_attribute_length": SpanLimits.UNSET,
    }
    settings.update(values)
    return SpanLimits(**settings)


def rpc_span(
    span_limits: SpanLimits = DEFAULT_LIMITS, capture: SpanCapture | None = None
) -> tuple[RpcSpan, Records]:
    live = LiveSampler(
        sampler_from_name("parentbased_always_on", None), follows_parent_else_samples=True
    )
    records = Records()
    processors = [capture.processor] if capture is not None else []
    tracer = RpcTracer(live, Resource.create({}), records, processors, span_limits)
    span = tracer.start(TEMPLATE, None, None, SpanKind.SERVER, dict(PEER))
    assert isinstance(span, RpcSpan)
    return span, records


def decoded(record: tuple[Any, ...]) -> trace_pb2.Span:
    return trace_pb2.Span.FromString(encode_span(*record))


def plain(value: Any) -> Any:
    """An ``AnyValue`` as Python: its one set field, an array as a list."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    return None if kind is None else getattr(value, str(kind))


def values(span: trace_pb2.Span) -> dict[str, Any]:
    return {kv.key: plain(kv.value) for kv in span.attributes}


# -- attribute count -------------------------------------------------------------------------------


def test_the_defaults_are_the_specs_and_read_no_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")  # the config reads it, not the tracer
    span, _ = rpc_span()
    assert span._tracer.limits.max_span_attributes == 128
    assert span._tracer.limits.max_span_attribute_length is None


def test_attributes_beyond_the_limit_are_discarded_and_counted() -> None:
    span, records = rpc_span(limits(max_span_attributes=20))
    for i in range(30):
        span.set_attribute(f"k{i}", i)
    span.set_attribute("k0", "again")  # a new value, not a new attribute: kept, nothing dropped
    span.end_ok("OK")  # the span is full: the status code is discarded too
    record = records.records[0]
    otlp = decoded(record)
    kept = values(otlp)
    # The template's 2, the peer's 2, then the first 16 set: the spec discards the newcomers.
    assert len(kept) == 20
    assert [k for k in kept if k.startswith("k")] == [f"k{i}" for i in range(16)]
    assert kept["k0"] == "again"
    assert "rpc.response.status_code" not in kept
    assert otlp.dropped_attributes_count == 30 - 16 + 1


def test_a_span_with_room_ends_ok_on_the_unchecked_path() -> None:
    span, records = rpc_span(limits(max_span_attributes=20))
    for i in range(15):  # 19 attributes: room for the status code
        span.set_attribute(f"k{i}", i)
    assert span._overflow is None
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    assert values(otlp)["rpc.response.status_code"] == "OK"
    assert len(otlp.attributes) == 20 and otlp.dropped_attributes_count == 0


def test_setting_a_template_attribute_keeps_keys_unique() -> None:
    span, records = rpc_span()
    span.set_attribute("rpc.method", "renamed")
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    keys = [kv.key for kv in otlp.attributes]
    assert len(keys) == len(set(keys)) == 5
    assert values(otlp)["rpc.method"] == "renamed"
    assert otlp.name == "pkg.Svc/Call"


def test_limits_tighter_than_the_rpc_attributes_bound_them_too() -> None:
    span, records = rpc_span(limits(max_span_attributes=3))
    span.set_attribute("user", 1)
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    assert list(values(otlp)) == ["rpc.system.name", "rpc.method", "network.peer.address"]
    assert otlp.dropped_attributes_count == 3  # the peer port, "user", the status code
    zero, zero_records = rpc_span(limits(max_span_attributes=0))
    zero.end_ok("OK")
    none = decoded(zero_records.records[0])
    assert len(none.attributes) == 0 and none.dropped_attributes_count == 5


# -- value length ----------------------------------------------------------------------------------


def test_truncation_cuts_strings_bytes_and_each_element_of_a_sequence() -> None:
    assert truncated("abcdefgh", 5) == "abcde"
    assert truncated(b"abcdefgh", 5) == b"abcde"
    assert truncated(["abcdefgh", "xy", 7, True, 1.5], 5) == ("abcde", "xy", 7, True, 1.5)
    assert truncated(12345678, 2) == 12345678
    assert truncated("short", 5) == "short"


def test_attribute_values_are_cut_to_the_value_length_limit() -> None:
    span, records = rpc_span(limits(max_span_attribute_length=4, max_attribute_length=4))
    span.set_attribute("text", "abcdefgh")
    span.set_attribute("list", ["abcdefgh", "ab"])
    span.add_event("e", {"detail": "abcdefgh", "n": 123456})
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    kept = values(otlp)
    assert kept["text"] == "abcd" and kept["list"] == ["abcd", "ab"]
    assert kept["rpc.method"] == "pkg." and kept["network.peer.address"] == "10.0"  # theirs too
    assert kept["rpc.response.status_code"] == "OK"
    event = {kv.key: kv.value for kv in otlp.events[0].attributes}
    assert event["detail"].string_value == "abcd" and event["n"].int_value == 123456
    assert otlp.dropped_attributes_count == 0  # cut, not dropped


def test_a_long_method_name_is_cut_in_its_template() -> None:
    span, _ = rpc_span(limits(max_span_attribute_length=200))
    tracer = span._tracer
    template = tracer.template("pkg.Svc/" + "M" * 300, "CLIENT", {"rpc.method": "pkg.Svc/" + "M" * 300})
    assert len(template.attributes["rpc.method"]) == 200
    assert template.name == "pkg.Svc/" + "M" * 300  # the span name is not an attribute


# -- events and links ------------------------------------------------------------------------------


def test_events_and_event_attributes_beyond_their_limits_are_counted() -> None:
    span, records = rpc_span(limits(max_events=2, max_event_attributes=2))
    span.add_event("first", {"a": 1, "b": 2, "c": 3, "d": 4})
    span.record_exception(ValueError("boom"))  # 4 attributes: 2 kept
    span.add_event("third")
    span.add_event("fourth")
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    assert [e.name for e in otlp.events] == ["first", "exception"]
    assert [kv.key for kv in otlp.events[0].attributes] == ["a", "b"]
    assert otlp.events[0].dropped_attributes_count == 2
    assert [kv.key for kv in otlp.events[1].attributes] == ["exception.type", "exception.message"]
    assert otlp.events[1].dropped_attributes_count == 2
    assert otlp.dropped_events_count == 2
    assert values(otlp)["rpc.response.status_code"] == "OK"  # events do not take attribute room


def test_links_and_link_attributes_beyond_their_limits_are_counted() -> None:
    span, records = rpc_span(limits(max_links=2, max_link_attributes=1))
    span.add_link(LINKED, {"why": "batch", "extra": 1})
    span.add_link(LINKED)
    span.add_link(LINKED, {"why": "third"})
    span.add_link(SpanContext(0, 0, is_remote=False))  # invalid, no attributes: ignored (SDK rule)
    span.end_ok("OK")
    otlp = decoded(records.records[0])
    assert len(otlp.links) == 2 and otlp.dropped_links_count == 1
    first = otlp.links[0]
    assert first.trace_id == LINKED.trace_id.to_bytes(16, "big")
    assert first.span_id == LINKED.span_id.to_bytes(8, "big")
    assert first.trace_state == "vendor=v1"
    assert first.flags == 0x01 | 0x100 | 0x200  # sampled; has is_remote; is remote
    assert [kv.key for kv in first.attributes] == ["why"] and first.dropped_attributes_count == 1
    assert len(otlp.links[1].attributes) == 0 and otlp.links[1].dropped_attributes_count == 0
    assert otlp.dropped_attributes_count == 0


def test_nothing_is_added_after_the_end() -> None:
    span, records = rpc_span(limits(max_events=1, max_links=1))
    span.end_ok("OK")
    span.add_event("late")
    span.add_link(LINKED)
    span.set_attribute("late", 1)
    otlp = decoded(records.records[0])
    assert not otlp.events and not otlp.links and "late" not in values(otlp)
    assert otlp.dropped_events_count == otlp.dropped_links_count == 0


# -- SDK processors: the ReadableSpan --------------------------------------------------------------


def test_processors_see_the_dropped_counts_as_the_sdk_carries_them() -> None:
    capture = SpanCapture()
    span, _ = rpc_span(
        limits(
            max_span_attributes=20,
            max_events=1,
            max_event_attributes=1,
            max_links=1,
            max_link_attributes=1,
        ),
        capture,
    )
    for i in range(20):
        span.set_attribute(f"k{i}", i)
    span.add_event("kept", {"a": 1, "b": 2})
    span.add_event("dropped")
    span.add_link(LINKED, {"a": 1, "b": 2})
    span.add_link(LINKED)
    span.end_ok("OK")
    (readable,) = capture.spans()
    assert len(readable.attributes or {}) == 20 and readable.dropped_attributes == 5
    assert readable.dropped_events == 1 and readable.events[0].dropped_attributes == 1
    assert readable.dropped_links == 1 and readable.links[0].dropped_attributes == 1
    # The SDK's OTLP encoder (used for processors' spans) carries them through.
    otlp = encode_spans([readable]).resource_spans[0].scope_spans[0].spans[0]
    assert (otlp.dropped_attributes_count, otlp.dropped_events_count, otlp.dropped_links_count) == (
        5,
        1,
        1,
    )
    assert otlp.events[0].dropped_attributes_count == 1 and otlp.links[0].dropped_attributes_count == 1


# -- SDK spans made by handler code ----------------------------------------------------------------


def sdk_span(tel: telemetry.Telemetry, capture: SpanCapture) -> ReadableSpan:
    with tel.tracer.start_as_current_span("handler.work") as span:
        for i in range(200):
            span.set_attribute(f"k{i}", i)
        for i in range(3):
            span.add_event(f"e{i}", {"long": "x" * 50})
    (readable,) = [s for s in capture.spans() if s.name == "handler.work"]
    return readable


def test_a_handler_span_with_200_attributes_keeps_128_and_counts_72() -> None:
    capture = SpanCapture()
    tel = telemetry.Telemetry(make_config("limits"), span_processors=[capture.processor])
    try:
        readable = sdk_span(tel, capture)
    finally:
        tel.shutdown()
    assert len(readable.attributes or {}) == 128
    assert readable.dropped_attributes == 72
    otlp = encode_spans([readable]).resource_spans[0].scope_spans[0].spans[0]
    assert len(otlp.attributes) == 128 and otlp.dropped_attributes_count == 72


def test_handler_spans_follow_the_configured_limits() -> None:
    capture = SpanCapture()
    config = make_config(
        "limits",
        span_attribute_count_limit=10,
        span_event_count_limit=2,
        event_attribute_count_limit=1,
        span_attribute_value_length_limit=8,
    )
    tel = telemetry.Telemetry(config, span_processors=[capture.processor])
    try:
        readable = sdk_span(tel, capture)
    finally:
        tel.shutdown()
    assert len(readable.attributes or {}) == 10 and readable.dropped_attributes == 190
    assert len(readable.events) == 2 and readable.dropped_events == 1
    assert readable.events[0].attributes == {"long": "x" * 8}  # the one length limit, events too


def test_one_limits_object_for_both_kinds_of_span() -> None:
    config = make_config("limits", span_link_count_limit=3, span_attribute_value_length_limit=64)
    built = build_span_limits(config)
    assert (built.max_span_attributes, built.max_events, built.max_links) == (128, 128, 3)
    assert built.max_span_attribute_length == built.max_attribute_length == 64
    tel = telemetry.Telemetry(config)
    try:
        assert tel.tracing is not None
        assert tel.tracing.rpc_tracer.limits.max_links == 3
        assert tel.tracing.provider._span_limits.max_links == 3
    finally:
        tel.shutdown()
    unlimited = build_span_limits(make_config("limits"))
    assert unlimited.max_span_attribute_length is None and unlimited.max_attribute_length is None


# -- configuration: the SDK environment variables --------------------------------------------------

LIMIT_FIELDS = SPAN_LIMIT_FIELDS


def limit_fields(config: telemetry.TelemetryConfig) -> tuple[int | None, ...]:
    return tuple(getattr(config, name) for name in LIMIT_FIELDS)


def test_limits_default_to_the_specs() -> None:
    assert limit_fields(telemetry.TelemetryConfig.from_env({})) == (128, None, 128, 128, 128, 128)


def test_each_variable_sets_its_limit() -> None:
    config = telemetry.TelemetryConfig.from_env(
        {
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "10",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "256",
            "OTEL_SPAN_EVENT_COUNT_LIMIT": "11",
            "OTEL_SPAN_LINK_COUNT_LIMIT": "0",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "12",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": " 13 ",
        }
    )
    assert limit_fields(config) == (10, 256, 11, 0, 12, 13)


def test_the_general_variables_are_the_fallbacks_of_the_attribute_limits() -> None:
    general = {"OTEL_ATTRIBUTE_COUNT_LIMIT": "7", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "99"}
    config = telemetry.TelemetryConfig.from_env(general)
    # Attribute counts (span, event, link) and the value length fall back; event and link counts
    # have no general variable.
    assert limit_fields(config) == (7, 99, 128, 128, 7, 7)
    specific = telemetry.TelemetryConfig.from_env(
        {
            **general,
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "300",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5",
        }
    )
    assert limit_fields(specific) == (300, 5, 128, 128, 7, 7)  # the model-specific one wins


def test_keyword_limits_win_over_the_environment() -> None:
    config = telemetry.TelemetryConfig.from_env(
        {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64", "OTEL_SPAN_EVENT_COUNT_LIMIT": "3"},
        span_attribute_value_length_limit=None,  # no limit, though the environment sets one
        span_event_count_limit=9,
    )
    assert config.span_attribute_value_length_limit is None and config.span_event_count_limit == 9


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "-1",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: must be within 0..2147483647",
        ),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "many", "OTEL_SPAN_EVENT_COUNT_LIMIT: expected an integer"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "1e3", "OTEL_SPAN_LINK_COUNT_LIMIT: expected an integer"),
        (
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "2147483648",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT: must be within",
        ),
        (
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            "1.5",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT: expected an integer",
        ),
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "-5",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: must be",
        ),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "x", "OTEL_ATTRIBUTE_COUNT_LIMIT: expected an integer"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-1", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: must be"),
    ],
)
def test_a_bad_limit_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(telemetry.ConfigError, match="^" + message):
        telemetry.TelemetryConfig.from_env({variable: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("span_attribute_count_limit", -1),
        ("span_event_count_limit", 2**31),
        ("span_link_count_limit", 1.5),
        ("event_attribute_count_limit", None),
        ("link_attribute_count_limit", True),
        ("span_attribute_value_length_limit", -1),
    ],
)
def test_a_bad_limit_field_names_the_field(field: str, value: object) -> None:
    with pytest.raises(
        telemetry.ConfigError, match=f"^{field}: must be an integer within 0..2147483647"
    ):
        telemetry.TelemetryConfig(**{field: value})  # type: ignore[arg-type]


def test_drops_are_logged_once_per_span_and_at_most_once_a_minute(monkeypatch: Any) -> None:
    reports: list[tuple[str, str]] = []
    monkeypatch.setattr(rpcspan, "_last_drop_log", float("-inf"))
    monkeypatch.setattr(
        rpcspan._log, "warning", lambda message, span, what: reports.append((span, what))
    )
    first, _ = rpc_span(limits(max_span_attributes=16, max_events=0))
    for i in range(40):
        first.set_attribute(f"k{i}", i)
    for _ in range(40):
        first.add_event("e")
    assert reports == [("pkg.Svc/Call", "an attribute")]  # once for the span, not per drop
    second, _ = rpc_span(limits(max_events=0))
    second.add_event("e")
    assert len(reports) == 1  # within the minute: folded
    monkeypatch.setattr(rpcspan, "_last_drop_log", float("-inf"))
    second.add_event("e")
    assert len(reports) == 1  # the second span already reported (silently): once per span
    third, _ = rpc_span(limits(max_links=0))
    third.add_link(LINKED)
    assert reports[-1] == ("pkg.Svc/Call", "a link")


class Annotating(Sampler):
    """Samples everything, adding ``count`` attributes of its own."""

    def __init__(self, count: int, value: str = "v") -> None:
        self._attributes = {f"sampler.k{i}": value for i in range(count)}

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, self._attributes)

    def get_description(self) -> str:
        return "Annotating"


def sampled_span(sampler: Sampler, span_limits: SpanLimits) -> tuple[RpcSpan, Records]:
    records = Records()
    tracer = RpcTracer(LiveSampler(sampler), Resource.create({}), records, (), span_limits)
    span = tracer.start(TEMPLATE, None, None, SpanKind.SERVER, dict(PEER))
    assert isinstance(span, RpcSpan)
    return span, records


def test_a_samplers_attributes_are_bounded_only_when_they_could_exceed_the_limits() -> None:
    few, few_records = sampled_span(RateLimitingSampler(10), DEFAULT_LIMITS)
    few.end_ok("OK")
    assert few_records.records[0][0] == TEMPLATE.encoded  # the method's template, encoded once
    assert values(decoded(few_records.records[0]))["sampler.type"] == "ratelimiting"

    many, many_records = sampled_span(Annotating(20), limits(max_span_attributes=20))
    many.end_ok("OK")
    otlp = decoded(many_records.records[0])
    assert len(otlp.attributes) == 20 and otlp.dropped_attributes_count == 2 + 2 + 20 + 1 - 20

    long, long_records = sampled_span(
        Annotating(1, "x" * 300), limits(max_span_attribute_length=200, max_attribute_length=200)
    )
    long.end_ok("OK")
    assert values(decoded(long_records.records[0]))["sampler.k0"] == "x" * 200
