"""Event and link limits on RPC spans: events, links and their attributes beyond their limits are
counted as dropped in the OTLP written, and nothing is added after the span ends.
"""

from __future__ import annotations

from opentelemetry.trace import SpanContext
from span_limit_helpers import LINKED, decoded, limits, rpc_span, values

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
