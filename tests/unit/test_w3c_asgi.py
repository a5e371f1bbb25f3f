"""W3C Trace Context over HTTP through the ASGI middleware (the handle's propagator): two
traceparent fields start a new trace, an invalid tracestate is dropped, and repeated tracestate
fields are one list.
"""

from __future__ import annotations

from typing import Any

from helpers import make_config
from w3c_cases import TP, Headers, P, T, ts

import telemetry
from telemetry.testing import SpanCapture

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
