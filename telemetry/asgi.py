"""Telemetry for an HTTP entry point (an ASGI app in front of gRPC services).

Per request: a SERVER span continuing the caller's W3C ``traceparent``/``tracestate`` and baggage (a
malformed header starts a new trace), named ``METHOD route`` with the current HTTP semantic
conventions (the values of sensitive ``url.query`` parameters, and userinfo in an absolute-form
target, replaced by ``REDACTED``: :mod:`telemetry.logging.redaction`);
``http_server_request_duration_seconds`` (histogram with ``trace_id`` exemplars); one access line
(with the same ``url.query``); and the request's timeout header (``x-request-timeout-ms`` by
default) turned into the chain deadline, so the gRPC calls the app makes get what is left of it. A
malformed timeout header is answered 400 without running the app. An exception escaping the app is
answered 500 with a generic JSON body (never the message or stack) and logged with its stack.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram

from telemetry.logging.pipeline import PIPELINE, get_logger
from telemetry.logging.redaction import redact_userinfo
from telemetry.rpc.deadline import deadline_scope
from telemetry.tracing.propagation import keep_baggage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("telemetry")
_access = get_logger("telemetry.http")

DEFAULT_TIMEOUT_HEADER = "x-request-timeout-ms"
# Plain decimal milliseconds: float() alone would also take "inf", "1e309", "1_000" and " 12 ".
_MILLISECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
# Probes are not requests: tracing them would bury real traffic (as grpc.health is not traced).
UNTRACED_PATHS = ("/healthz", "/livez", "/readyz", "/metrics")


def http_duration_histogram(buckets: tuple[float, ...]) -> Histogram:
    """The histogram every middleware of one service shares (register it once, in one registry)."""
    return Histogram(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
        ["http_request_method", "http_route", "http_response_status_code"],
        buckets=buckets,
        registry=None,
    )


class AsgiTelemetry:
    """ASGI middleware; build it with :meth:`telemetry.Telemetry.asgi`.

    ``route(path) -> str`` names the route template for span names and metric labels (keep it low
    cardinality: ``/orders/{id}``, not the id). Lifespan and websocket scopes, and probes
    (``untraced_paths``), pass through untouched.
    """

    def __init__(
        self,
        app: App,
        *,
        tracer: trace.Tracer,
        propagator: Any,
        histogram: Histogram | None,
        route: Callable[[str], str],
        timeout_header: str = DEFAULT_TIMEOUT_HEADER,
        max_timeout: float = 300.0,
        untraced_paths: Collection[str] = UNTRACED_PATHS,
        trusted_baggage: Collection[str] | None = (),
    ) -> None:
        """``trusted_baggage``: the caller's baggage keys to keep (default none: an HTTP entry
        point is a trust boundary; None keeps every key, for an internal hop)."""
        self._app = app
        self._trusted_baggage = None if trusted_baggage is None else frozenset(trusted_baggage)
        self._tracer = tracer
        self._propagator = propagator
        self._histogram = histogram
        self._route = route
        self._timeout_header = timeout_header.lower()
        self._max_timeout = max_timeout
        self._untraced = frozenset(untraced_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self._untraced:
            await self._app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = _headers(scope)
        raw_method = scope.get("method", "GET")
        # OpenTelemetry's HTTP conventions: a method outside the known set is "_OTHER" (its raw
        # value in http.request.method_original), so a caller cannot mint span names or labels.
        method = raw_method if raw_method in KNOWN_METHODS else "_OTHER"
        path, query = _target(scope)
        route = self._route(path)
        # The caller's baggage is untrusted here: only the allowed keys reach the app and the
        # calls it makes (W3C Baggage, security considerations).
        if self._trusted_baggage == _NO_KEYS and "baggage" in headers:
            # Nothing of it is kept: do not parse it at all (8 KB a header, from anyone).
            headers = {k: v for k, v in headers.items() if k != "baggage"}
        parent = keep_baggage(self._propagator.extract(headers), self._trusted_baggage)
        token = otel_context.attach(parent)
        status = [0]
        trace_response: list[bytes] = []

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                if trace_response:  # the caller learns which trace to look for
                    headers = [*message.get("headers", ()), (b"traceresponse", trace_response[0])]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            with self._tracer.start_as_current_span(
                f"{'HTTP' if method == '_OTHER' else method} {route}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes=_request_attributes(scope, method, route, headers, path, query),
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                trace_response.append(traceresponse(span.get_span_context()))
                await self._run(scope, receive, send_recording, headers, span, status)
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                    span.set_attribute("error.type", str(status[0]))
                self._finish(span, method, route, status[0], time.perf_counter() - start, scope,
                             path, query)  # fmt: skip
        finally:
            otel_context.detach(token)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str],
        span: trace.Span, status: list[int],
    ) -> None:  # fmt: skip
        raw_timeout = headers.get(self._timeout_header)
        timeout: float | None = None
        if raw_timeout is not None:
            timeout = self._parse_timeout(raw_timeout)
            if timeout is None:
                problem = f"{self._timeout_header}: expected milliseconds > 0"
                await _json(send, 400, {"error": problem, "trace_id": _trace_id(span)})
                return
        try:
            with deadline_scope(timeout) if timeout is not None else contextlib.nullcontext():
                await self._app(scope, receive, send)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.set_attribute("error.type", type(exc).__qualname__)
            _log.error("unhandled exception in %s %s", scope.get("method"), _target(scope)[0],
                       exc_info=exc)  # fmt: skip
            if status[0] == 0:  # nothing sent yet: the client still gets a clean answer
                await _json(send, 500, {"error": "internal error", "trace_id": _trace_id(span)})

    def _parse_timeout(self, raw: str) -> float | None:
        if _MILLISECONDS.fullmatch(raw) is None:
            return None
        millis = float(raw)
        if millis <= 0:
            return None
        return min(millis / 1000.0, self._max_timeout)

    def _finish(
        self, span: trace.Span, method: str, route: str, status: int, duration: float, scope: Scope,
        path: str, query: str,
    ) -> None:  # fmt: skip
        ctx = span.get_span_context()
        if self._histogram is not None:
            exemplar = {"trace_id": format(ctx.trace_id, "032x")} if ctx.trace_flags.sampled else None
            self._histogram.labels(method, route, str(status)).observe(duration, exemplar)
        client = scope.get("client")
        # 429 is a limit doing its job (a client over its quota): expected, not a fault to warn of.
        level = "error" if status >= 500 else "warning" if status >= 400 and status != 429 else "info"
        fields = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "http.response.status_code": status,
            "http.time_ms": round(duration * 1000.0, 3),
            "client.address": client[0] if client else None,
        }
        if query:
            fields["url.query"] = query
        getattr(_access, level)("finished request", **fields)


def traceresponse(ctx: trace.SpanContext) -> bytes:
    """The ``traceresponse`` response header of W3C Trace Context Level 2 (editor's draft,
    https://w3c.github.io/trace-context/#traceresponse-header): version, the trace id, the id of
    the span that served the request, and its flags, as ``traceparent`` spells them. Sent even for
    an unsampled span: the ids still name the request in the logs."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, lower-cased names; repeated headers joined with commas (RFC 9110)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _target(scope: Scope) -> tuple[str, str]:
    """``url.path`` and ``url.query`` as recorded (span, access line, labels through the route)."""
    path: str = scope.get("path", "/")
    # An absolute-form target (RFC 9112 3.2.2, what proxies get) reaches ``path`` whole on some
    # servers: semconv url.full, userinfo "SHOULD be redacted".
    if "@" in path:
        path = redact_userinfo(path)
    raw = scope.get("query_string")
    # semconv url.query: values of credential-carrying parameters SHOULD be replaced by REDACTED.
    return path, (PIPELINE.redactor.query(raw.decode("latin-1")) if raw else "")


_NO_KEYS: frozenset[str] = frozenset()
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)  # RFC 9110 and RFC 5789, as OpenTelemetry's HTTP conventions list them
_MAX_ATTRIBUTE = 256


def _request_attributes(
    scope: Scope, method: str, route: str, headers: dict[str, str], path: str, query: str
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "http.route": route,
        "url.path": path,
        "url.scheme": scope.get("scheme", "http"),
    }
    if query:
        attributes["url.query"] = query
    if method == "_OTHER":
        attributes["http.request.method_original"] = str(scope.get("method", ""))[:_MAX_ATTRIBUTE]
    if agent := headers.get("user-agent"):
        attributes["user_agent.original"] = agent[:_MAX_ATTRIBUTE]  # caller-controlled: bounded
    if client := scope.get("client"):
        attributes["client.address"] = client[0]
    if server := scope.get("server"):
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    return attributes


def _trace_id(span: trace.Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


async def _json(send: Send, status: int, body: Any) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": payload})
