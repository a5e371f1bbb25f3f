"""The ASGI middleware, driven through the ASGI protocol itself (no server needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from helpers import make_config, metric_value, run_asgi
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing import SpanCapture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def tel() -> Iterator[tuple[telemetry.Telemetry, SpanCapture, CollectorRegistry]]:
    spans, registry = SpanCapture(), CollectorRegistry()
    handle = telemetry.Telemetry(make_config("web"), registry=registry,
                                 span_processors=[spans.processor])  # fmt: skip
    yield handle, spans, registry
    handle.shutdown()


async def answer(scope: Any, receive: Any, send: Any) -> None:
    payload = orjson.dumps({"remaining": telemetry.remaining()})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


async def explode(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("secret detail")


async def test_a_request_continues_the_callers_trace_and_is_measured(tel: Any) -> None:
    handle, spans, registry = tel
    app = handle.asgi(answer, route=lambda path: "/items/{id}")
    status, _ = await run_asgi(app, "/items/7", {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
    assert status == 200
    (span,) = spans.spans()
    assert span.name == "GET /items/{id}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    assert metric_value(registry, "http_server_request_duration_seconds_count",
                        http_request_method="GET", http_route="/items/{id}",
                        http_response_status_code="200") == 1  # fmt: skip


async def test_a_malformed_traceparent_starts_a_new_trace(tel: Any) -> None:
    handle, spans, _ = tel
    status, _ = await run_asgi(handle.asgi(answer), "/x", {"traceparent": "00-garbage-01"})
    assert status == 200
    (span,) = spans.spans()
    assert span.parent is None and span.context.trace_id != 0


async def test_the_timeout_header_becomes_the_chain_deadline(tel: Any) -> None:
    handle, _, _ = tel
    app = handle.asgi(answer)
    _, body = await run_asgi(app, "/x", {"x-request-timeout-ms": "1500"})
    assert 1.0 < body["remaining"] <= 1.5
    _, body = await run_asgi(app, "/x")
    assert body["remaining"] is None
    status, body = await run_asgi(app, "/x", {"x-request-timeout-ms": "-5"})
    assert status == 400 and "x-request-timeout-ms" in body["error"]


@pytest.mark.parametrize("raw", ["-5", "0", "0.0", "soon", "inf", "nan", "1e309", "1e3", "1_000",
                                 " 12", "0x10", "1" * 13, "1.1234567", ""])  # fmt: skip
async def test_a_timeout_header_that_is_not_plain_milliseconds_is_refused(tel: Any, raw: str) -> None:
    """float() alone would take "inf" (no deadline at all), "1e309" and "1_000"."""
    status, body = await run_asgi(tel[0].asgi(answer), "/x", {"x-request-timeout-ms": raw})
    assert (status, body["error"]) == (400, "x-request-timeout-ms: expected milliseconds > 0")
    assert body.keys() == {"error", "trace_id"}


async def test_a_huge_timeout_is_capped(tel: Any) -> None:
    _, body = await run_asgi(tel[0].asgi(answer), "/x", {"x-request-timeout-ms": "9" * 12})
    assert 299.0 < body["remaining"] <= 300.0


async def test_an_unexpected_exception_is_a_generic_500_and_an_error_span(tel: Any) -> None:
    handle, spans, _ = tel
    status, body = await run_asgi(handle.asgi(explode), "/boom")
    (span,) = spans.spans()
    # no detail leaks; the trace id lets the caller (and support) find the stack in the logs
    assert (status, body) == (
        500,
        {"error": "internal error", "trace_id": f"{span.context.trace_id:032x}"},
    )
    assert span.status.status_code.name == "ERROR"
    assert [event.name for event in span.events] == ["exception"]


async def test_probes_are_not_traced(tel: Any) -> None:
    handle, spans, _ = tel
    assert (await run_asgi(handle.asgi(answer), "/healthz"))[0] == 200
    assert spans.spans() == ()


async def test_the_response_names_its_trace_in_a_traceresponse_header(tel: Any) -> None:
    """W3C Trace Context Level 2's ``traceresponse``: the trace and the span that served."""
    handle, spans, _ = tel
    scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"", "scheme": "http",
             "headers": [(b"traceparent", f"00-{TRACE_ID}-{PARENT}-01".encode())]}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await handle.asgi(answer)(scope, receive, send)
    (span,) = spans.spans()
    headers = dict(sent[0]["headers"])
    assert headers[b"traceresponse"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01".encode()
