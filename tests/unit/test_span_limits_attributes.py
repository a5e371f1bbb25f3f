"""Attribute limits on RPC spans (trace SDK spec, "Span Limits"; common spec, "Attribute Limits"):
the defaults are the spec's, attributes beyond the count are discarded and counted (the template's
and the peer's too), keys stay unique, values are cut to the length limit (strings, bytes, each
element of a sequence; a long method name in its template), and a sampler's attributes are
bounded only when they could exceed the limits.
"""

from __future__ import annotations

from typing import Any, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind
from span_limit_helpers import PEER, TEMPLATE, Records, decoded, limits, rpc_span, values

from telemetry.tracing.limits import DEFAULT_LIMITS, truncated
from telemetry.tracing.rpcspan import RpcSpan
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.samplers import LiveSampler, RateLimitingSampler

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
    tracer = cast(RpcTracer, span._tracer)  # the span types its tracer as a SpanOwner
    template = tracer.template("pkg.Svc/" + "M" * 300, "CLIENT", {"rpc.method": "pkg.Svc/" + "M" * 300})
    assert len(template.attributes["rpc.method"]) == 200
    assert template.name == "pkg.Svc/" + "M" * 300  # the span name is not an attribute


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
