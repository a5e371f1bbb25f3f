"""What span limits drop is logged once per span, and at most once a minute."""

from __future__ import annotations

from typing import Any

from span_limit_helpers import LINKED, limits, rpc_span

from telemetry.tracing import limits as span_limits


def test_drops_are_logged_once_per_span_and_at_most_once_a_minute(monkeypatch: Any) -> None:
    reports: list[tuple[str, str]] = []
    monkeypatch.setattr(span_limits, "_last_drop_log", float("-inf"))
    monkeypatch.setattr(
        span_limits._log, "warning", lambda message, span, what: reports.append((span, what))
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
    monkeypatch.setattr(span_limits, "_last_drop_log", float("-inf"))
    second.add_event("e")
    assert len(reports) == 1  # the second span already reported (silently): once per span
    third, _ = rpc_span(limits(max_links=0))
    third.add_link(LINKED)
    assert reports[-1] == ("pkg.Svc/Call", "a link")
