"""The access-log concern: exactly one line per RPC, aggregated.

The server writes the line of every call. A client writes lines for calls that failed (by default:
including calls refused locally, which no server saw), or for every call with ``lines="all"``.

Handler code adds fields to its call's line with :func:`telemetry.add_log_fields` while it runs (the
seed notes' "aggregate fields into one access log"). Levels follow go-grpc-middleware's code-to-level
mapping. Metadata and payloads are off by default; when on, sensitive keys are redacted and payloads
truncated. An unexpected handler exception is logged here with its stack (the client only ever sees
INTERNAL).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from functools import partial
from typing import Any

import grpc

from telemetry.logging.pipeline import PIPELINE, REDACTED, current_call
from telemetry.rpc.call import CallState, MethodInfo, Side, go_code_name
from telemetry.tracing.concern import trace_ids

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


def _client_level(code: grpc.StatusCode) -> str:
    return "info" if code == _C.OK else "warning"


class AccessLog:
    """Writes the access line; on the server it also scopes :func:`add_log_fields` to the call."""

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
        self._side = side
        self._all = lines == "all"
        self._errors = lines in ("all", "errors")
        self._excluded = frozenset(excluded_services)
        self._log_metadata = log_metadata
        self._log_payloads = log_payloads
        self._max_chars = payload_max_chars
        self._sensitive = frozenset(k.lower() for k in sensitive_keys)

    def prepare(self, info: MethodInfo) -> None:
        info.extras[self] = {
            "grpc.component": info.side.value,
            "grpc.service": info.service,
            "grpc.method": info.method,
            "grpc.method_type": info.kind.value,
        }

    def on_start(self, state: CallState) -> None:
        if self._side is Side.SERVER:
            state.service = self._service
            state.service_token = current_call.set(state)

    def on_finish(self, state: CallState) -> None:
        if state.service_token is not None:
            with contextlib.suppress(ValueError):  # finished in another context: nothing to undo
                current_call.reset(state.service_token)
        code = state.code
        level = _SERVER_LEVELS.get(code, "error") if self._side is Side.SERVER else _client_level(code)
        wanted = self._all or (self._errors and code != grpc.StatusCode.OK)
        quiet = not wanted or state.info.service in self._excluded
        if state.exception is None and (quiet or not PIPELINE.enabled_for(level)):
            return
        # The line is built on the writer thread: the call is over, its state no longer changes.
        PIPELINE.emit_later(partial(self._line, state, level, time.time()))

    def _line(self, state: CallState, level: str, timestamp: float) -> dict[str, Any]:
        event: dict[str, Any] = {
            "timestamp": timestamp,
            "level": level,
            "service": self._service,
            "event": "finished call",
        }
        ids = trace_ids(state)
        if ids is not None:
            event["trace_id"], event["span_id"] = ids
        event.update(state.info.extras[self])
        event["grpc.code"] = go_code_name(state.code)
        event["grpc.time_ms"] = round(state.duration * 1000.0, 3)
        event["peer.address"] = state.peer if self._side is Side.SERVER else state.target
        if state.code != grpc.StatusCode.OK and state.details:
            event["grpc.error"] = state.details
        if state.info.kind.value != "unary":
            event["grpc.msgs_received"] = state.msgs_received
            event["grpc.msgs_sent"] = state.msgs_sent
        if self._log_metadata:
            event["grpc.metadata"] = self._metadata(state.metadata)
        if self._log_payloads:
            if state.request is not None:
                event["grpc.request"] = self._payload(state.request)
            if state.response is not None:
                event["grpc.response"] = self._payload(state.response)
        if state.exception is not None:
            exc = state.exception
            event["exception"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if state.fields:
            event.update(state.fields)
        return event

    def _metadata(self, metadata: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in metadata:
            if key.endswith("-bin"):
                continue
            out[key] = REDACTED if key.lower() in self._sensitive else str(value)
        return out

    def _payload(self, message: Any) -> str:
        text = str(message).replace("\n", " ").strip()
        if len(text) > self._max_chars:
            return text[: self._max_chars] + "...(truncated)"
        return text
