"""The access-log concern: exactly one line per RPC, aggregated.

The server writes the line of every call. A client writes lines for calls that failed (by default:
including calls refused locally, which no server saw), or for every call with ``lines="all"``.

Handler code adds fields to its call's line with :func:`telemetry.add_log_fields` while it runs, so
one call's facts end up on one line rather than scattered over several: the access-log practice of
go-grpc-middleware's logging interceptor (https://github.com/grpc-ecosystem/go-grpc-middleware,
``interceptors/logging``: fields added with ``InjectFields`` land on the call's "finished call"
line). Levels follow go-grpc-middleware's code-to-level mapping. Metadata and payloads are off by
default; when on, sensitive keys are redacted (by pattern: :mod:`telemetry.logging.redaction`) and
payloads truncated. An unexpected handler exception is logged here with its stack (the client only
ever sees INTERNAL).
"""

from __future__ import annotations

import time
import traceback
from typing import Any

import grpc
import orjson

from telemetry.computed_cache import ComputedCache
from telemetry.logging.pipeline import PIPELINE
from telemetry.logging.redaction import REDACTED, redactor_for
from telemetry.logging.render import FIRST_KEYS, iso_time
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side
from telemetry.rpc.relay import refusal
from telemetry.rpc.status import go_code_name
from telemetry.tracing.concern import span_ids

_C = grpc.StatusCode
_SERVER_LEVELS = {
    **dict.fromkeys(
        (
            _C.OK,
            _C.CANCELLED,
            _C.INVALID_ARGUMENT,
            _C.NOT_FOUND,
            _C.ALREADY_EXISTS,
            _C.UNAUTHENTICATED,
        ),
        "info",
    ),
    **dict.fromkeys(
        (
            _C.DEADLINE_EXCEEDED,
            _C.PERMISSION_DENIED,
            _C.RESOURCE_EXHAUSTED,
            _C.FAILED_PRECONDITION,
            _C.ABORTED,
            _C.OUT_OF_RANGE,
            _C.UNAVAILABLE,
        ),
        "warning",
    ),
    **dict.fromkeys((_C.UNKNOWN, _C.UNIMPLEMENTED, _C.INTERNAL, _C.DATA_LOSS), "error"),
}


def _rate_limited(state: CallState) -> bool:
    """Was the call refused by a rate limit: this server's (its decision is on the call), or the
    target's (its trailing metadata says so)?"""
    fields = state.fields
    if fields is not None and fields.get("governance") == "rejected:rate_limit":
        return True
    return refusal(state.trailing) == "rate_limit"


class AccessLog:
    """Writes the access line; on the server it also names the service for the handler's lines."""

    logs_exceptions = True

    def __init__(
        self,
        service_name: str,
        side: Side,
        *,
        lines: str = "all",
        excluded_services: tuple[str, ...] = (),
        log_metadata: bool = False,
        log_payloads: bool = False,
        payload_max_chars: int = 512,
        sensitive_keys: tuple[str, ...] = (),
    ) -> None:
        self._service = service_name
        self.side = side
        self._all = lines == "all"
        self._errors = lines in ("all", "errors")
        self._excluded = frozenset(excluded_services)
        self.log_metadata = log_metadata
        self.log_payloads = log_payloads
        self._max_chars = payload_max_chars
        self._sensitive = redactor_for(frozenset(sensitive_keys)).sensitive
        self._json_head = _json_members({"service": service_name, "event": "finished call"})

    def prepare(self, info: MethodInfo) -> None:
        if self.side is Side.SERVER:
            info.owner = self._service
        info.extras[self] = _MethodFields(
            {
                "grpc.component": info.side.value,
                "grpc.service": info.service,
                "grpc.method": info.method,
                "grpc.method_type": info.kind.value,
            }
        )

    def on_finish(self, state: CallState) -> None:
        code = state.code
        if code is _C.OK:  # most calls; status codes are enums, whose hashing runs in Python
            level = "info"
        elif code is _C.RESOURCE_EXHAUSTED and _rate_limited(state):
            level = "info"  # a limit doing its job (a scraper over its quota): expected, not a fault
        else:
            level = _SERVER_LEVELS.get(code, "error") if self.side is Side.SERVER else "warning"
        wanted = self._all or (self._errors and code != grpc.StatusCode.OK)
        quiet = not wanted or state.info.service in self._excluded
        if state.exception is None and (quiet or not PIPELINE.enabled_for(level)):
            return
        # The line is built on the writer thread from a snapshot of plain values: holding the call
        # state (and through it grpc's call objects) until the writer runs would keep dozens of
        # objects per call alive across garbage collections, which then promote them and collect
        # the whole heap far more often.
        PIPELINE.emit_later(_Finished(self, state, level))

    def line(self, done: _Finished) -> dict[str, Any]:
        """The access line of a finished call, as an event dict."""
        event: dict[str, Any] = {
            "timestamp": done.timestamp,
            "level": done.level,
            "service": self._service,
            "event": "finished call",
        }
        if done.ids is not None:
            event["trace_id"] = format(done.ids[0], "032x")
            event["span_id"] = format(done.ids[1], "016x")
        event.update(done.info.extras[self].fields)
        event["grpc.code"] = go_code_name(done.code)
        event["grpc.time_ms"] = round(done.duration * 1000.0, 3)
        event["peer.address"] = done.address
        if done.code is not _C.OK and done.details:
            event["grpc.error"] = done.details
        if done.info.kind is not RpcKind.UNARY:
            event["grpc.msgs_received"] = done.msgs_received
            event["grpc.msgs_sent"] = done.msgs_sent
        if done.metadata is not None:
            event["grpc.metadata"] = self._metadata(done.metadata)
        if done.request is not None:
            event["grpc.request"] = self._payload(done.request)
        if done.response is not None:
            event["grpc.response"] = self._payload(done.response)
        if done.exception is not None:
            exc = done.exception
            event["exception"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if done.fields:
            event.update(done.fields)
        return event

    def json_line(self, done: _Finished) -> str | None:
        """The line exactly as ``render_json(self.line(done))``, formatted directly for the usual
        call (unary, no error details, handler fields, metadata, payloads or exception, and no key
        of its configured as sensitive); None otherwise."""
        if (
            done.details
            or done.fields
            or done.exception is not None
            or done.metadata is not None
            or done.request is not None
            or done.response is not None
            or done.info.kind is not RpcKind.UNARY
            or PIPELINE.redactor.any_sensitive[_PLAIN_LINE_KEYS]
        ):
            return None
        ids = ""
        if done.ids is not None:
            ids = f'"trace_id":"{done.ids[0]:032x}","span_id":"{done.ids[1]:016x}",'
        address = _JSON_STRINGS[done.address]
        # Code names are plain ASCII words, and a float's repr is the shortest text that reads back
        # as it, as orjson writes it (a test compares the two on many values).
        return (
            f'{{"timestamp":"{iso_time(done.timestamp)}","level":"{done.level}",{self._json_head},'
            f'{ids}{done.info.extras[self].json},"grpc.code":"{go_code_name(done.code)}",'
            f'"grpc.time_ms":{round(done.duration * 1000.0, 3)!r},"peer.address":{address}}}'
        )

    def _metadata(self, metadata: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in metadata:
            if key.endswith("-bin"):
                continue
            out[key] = REDACTED if self._sensitive(key) else str(value)
        return out

    def _payload(self, message: Any) -> str:
        text = str(message).replace("\n", " ").strip()
        if len(text) > self._max_chars:
            return text[: self._max_chars] + "...(truncated)"
        return text


# The keys of a line json_line writes (redaction of any of them needs the general path).
_PLAIN_LINE_KEYS = frozenset(
    (
        *FIRST_KEYS,
        "grpc.component",
        "grpc.service",
        "grpc.method",
        "grpc.method_type",
        "grpc.code",
        "grpc.time_ms",
        "peer.address",
    )
)


# Peer addresses as JSON strings: each connection's calls share one.
_JSON_STRINGS: ComputedCache[str, str] = ComputedCache(lambda text: orjson.dumps(text).decode())


def _json_members(fields: dict[str, Any]) -> str:
    """``fields`` as JSON object members, without the braces."""
    return orjson.dumps(fields).decode()[1:-1]


class _MethodFields:
    """The fields every access line of one method carries, as a dict and as JSON members."""

    __slots__ = ("fields", "json")

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.json = _json_members(fields)


class _Finished:
    """What an access line needs of a finished call, without the call itself: queued for the
    writer thread, which builds the line (a :class:`~telemetry.logging.writer.DeferredEvent`)."""

    __slots__ = (
        "access_log",
        "address",
        "code",
        "details",
        "duration",
        "exception",
        "fields",
        "ids",
        "info",
        "level",
        "metadata",
        "msgs_received",
        "msgs_sent",
        "request",
        "response",
        "timestamp",
    )

    def __init__(self, access_log: AccessLog, state: CallState, level: str) -> None:
        self.access_log = access_log
        self.timestamp = time.time()
        self.level = level
        self.info = state.info
        self.code = state.code
        self.details = state.details
        self.duration = state.duration
        self.address = state.peer if access_log.side is Side.SERVER else state.target
        self.ids = span_ids(state)
        self.msgs_received = state.msgs_received
        self.msgs_sent = state.msgs_sent
        self.metadata = state.metadata if access_log.log_metadata else None
        self.request = state.request if access_log.log_payloads else None
        self.response = state.response if access_log.log_payloads else None
        self.exception = state.exception
        self.fields = state.fields

    def event(self) -> dict[str, Any]:
        return self.access_log.line(self)

    def json_line(self) -> str | None:
        return self.access_log.json_line(self)
