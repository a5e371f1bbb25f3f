"""Hostile input at the ASGI entry point: credentials in the URL, floods of bad trace headers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import make_config, run_asgi

import telemetry
from telemetry.testing import SpanCapture
from telemetry.testing.clock import FakeClock
from telemetry.tracing import header_warnings as throttle
from telemetry.tracing.header_warnings import HEADER_LOGGERS, HeaderWarningThrottle
from telemetry.tracing.propagation import HEADER_LOGGER, W3CPropagation

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# The SDK's codecs (baggage) and ours (trace context: telemetry.tracing.w3c's rules) warn.
LOGGERS = (*HEADER_LOGGERS, HEADER_LOGGER)


@pytest.fixture
def tel() -> Iterator[tuple[telemetry.Telemetry, SpanCapture]]:
    spans = SpanCapture()
    handle = telemetry.Telemetry(make_config("web"), span_processors=[spans.processor])
    yield handle, spans
    handle.shutdown()


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """A fresh throttle on a fake clock in place of the process's one."""
    fake = FakeClock()
    fresh = HeaderWarningThrottle(clock=fake)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.removeFilter(throttle.THROTTLE)
        logger.addFilter(fresh)
    yield fake
    for logger in loggers:
        logger.removeFilter(fresh)
        logger.addFilter(throttle.THROTTLE)


async def run(app: Any, path: str, query: bytes = b"", headers: dict[str, str] | None = None) -> int:
    return (await run_asgi(app, path, headers, query))[0]


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


QUERY = (
    b"q=shoes&token=abc1&password=hunter2&api_key=k1&%74oken=enc1&token=again1&sig=sig1"
    b"&X-Amz-Signature=amz1&X-Access-Token=xat1&page=&session=&note&Signature=s1&signature=kept"
)
REDACTED_QUERY = (
    "q=shoes&token=REDACTED&password=REDACTED&api_key=REDACTED&%74oken=REDACTED&token=REDACTED"
    "&sig=REDACTED&X-Amz-Signature=REDACTED&X-Access-Token=REDACTED&page=&session=&note"
    "&Signature=REDACTED&signature=kept"
)
SECRETS = ("abc1", "hunter2", "k1", "enc1", "again1", "sig1", "amz1", "xat1", "s1")


async def test_query_values_are_redacted_on_the_span_and_the_access_line(tel: Any, logs: Any) -> None:
    handle, spans = tel
    assert await run(handle.asgi(ok), "/search", QUERY) == 200
    (span,) = spans.spans()
    assert span.attributes is not None and span.attributes["url.query"] == REDACTED_QUERY
    (line,) = logs.matching(event="finished request")
    assert line["url.query"] == REDACTED_QUERY and line["url.path"] == "/search"
    recorded = repr(dict(span.attributes)) + repr(logs.events)
    assert not [secret for secret in SECRETS if f"={secret}" in recorded]


async def test_a_request_without_a_query_records_none(tel: Any, logs: Any) -> None:
    handle, spans = tel
    await run(handle.asgi(ok), "/search")
    (span,) = spans.spans()
    assert span.attributes is not None and "url.query" not in span.attributes
    assert "url.query" not in logs.matching(event="finished request")[0]


async def test_userinfo_of_an_absolute_form_target_is_redacted(tel: Any, logs: Any) -> None:
    handle, spans = tel
    await run(handle.asgi(ok), "http://alice:s3cret@example.com/items/7", b"token=t0k")
    expected = "http://REDACTED:REDACTED@example.com/items/7"
    (span,) = spans.spans()
    assert span.attributes is not None and span.attributes["url.path"] == expected
    assert span.attributes["url.query"] == "token=REDACTED"
    assert span.name == f"GET {expected}"  # the default route is the path itself
    (line,) = logs.matching(event="finished request")
    assert line["url.path"] == expected and line["http.route"] == expected
    assert "s3cret" not in repr(logs.events) + repr(dict(span.attributes)) + span.name


def _header_warnings(logs: Any) -> list[dict[str, Any]]:
    return [event for event in logs.events if event.get("logger") in LOGGERS]


async def test_a_flood_of_bad_trace_headers_logs_one_line_a_second_per_kind(
    tel: Any, logs: Any, clock: FakeClock
) -> None:
    handle, _ = tel
    app = handle.asgi(ok, trusted_baggage=None)  # an internal hop: it parses the caller's baggage
    grpc_side = W3CPropagation()
    bad = {"traceparent": "00-" + "a" * 600, "baggage": "k=" + "v" * 9000}
    bad_grpc = [("traceparent", TRACEPARENT), ("tracestate", "bad member " + "x" * 8000),
                ("baggage", "no equals sign " + "y" * 3000)]  # fmt: skip
    for _ in range(300):
        assert await run(app, "/x", headers=bad) == 200
        grpc_side.extract(bad_grpc)
    first = _header_warnings(logs)
    kinds = {line["event"][:40] for line in first}
    assert len(first) == len(kinds) >= 4  # traceparent, baggage size, tracestate, baggage entry
    assert all(line["folded"] == 0 for line in first)
    assert max(len(line["event"]) for line in first) < 300  # 9 KB of header cut to 128 chars
    assert all("chars)" in line["event"] for line in first)  # each quotes its header, cut

    clock.advance(1.5)
    assert await run(app, "/x", headers=bad) == 200
    grpc_side.extract(bad_grpc)
    second = _header_warnings(logs)[len(first) :]
    assert len(second) == len(first)
    assert sorted(line["folded"] for line in second) == [299] * len(first)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_throttle_table_is_bounded_by_kind_not_by_value() -> None:
    gate = HeaderWarningThrottle(clock=FakeClock(), max_kinds=8)
    handler = _Records()
    records = handler.records
    logger = logging.getLogger("tests.throttle")
    logger.propagate = False
    logger.addHandler(handler)
    logger.addFilter(gate)
    try:
        for i in range(1000):
            logger.warning(f"header {i} was bad: " + "z" * 1000)  # values in the format string
            logger.warning("member %s", f"{i}" + "q" * 5000)
        assert gate.kinds() <= 9
        assert len(records) <= 9
        assert all(len(record.getMessage()) <= 600 for record in records)
        member = next(r for r in records if r.msg == "member %s")
        assert member.getMessage().endswith("...(5001 chars)")
    finally:
        logger.removeFilter(gate)
        logger.removeHandler(handler)
        logger.propagate = True
