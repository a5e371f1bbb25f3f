"""The one extension point every interceptor is built from.

A *concern* (tracing, metrics, access logging, deadlines, and later governance) implements
``on_start(state)`` and ``on_finish(state)``, and optionally ``prepare(info)`` (once per method) and
``on_message(state, received)`` (per streamed message). The four adapters (sync/aio x server/client)
run a :class:`ConcernChain`, so one chain serves all four RPC kinds. Concerns start in order and
finish in reverse, so tracing (first) still has its span current while logging and metrics finish.

A concern may refuse a call by raising :class:`~telemetry.rpc.call.RejectCall` from ``on_start``.
Any other exception from a concern is a bug in telemetry: it is logged (rate-limited) and the RPC
goes on. Telemetry never fails an RPC.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from time import perf_counter
from typing import Protocol, runtime_checkable

from telemetry.rpc.call import CallState, MethodInfo, RejectCall, RpcKind

_log = logging.getLogger("telemetry")


@runtime_checkable
class Concern(Protocol):
    def on_start(self, state: CallState) -> None: ...

    def on_finish(self, state: CallState) -> None: ...


class _HookFailureReporter:
    """Logs a failing hook at most once a minute per (concern, phase), so a bug cannot flood logs."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, concern: object, phase: str) -> None:
        key = (type(concern).__name__, phase)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            self._last[key] = now
        _log.exception("telemetry hook %s.%s failed; the RPC continues", key[0], phase)


report_hook_failure = _HookFailureReporter()


class ConcernChain:
    """Runs concerns around a call, guarding every hook."""

    __slots__ = ("concerns", "message_concerns", "preparers", "reversed")

    def __init__(self, concerns: Iterable[Concern]) -> None:
        self.concerns = tuple(concerns)
        self.reversed = tuple(reversed(self.concerns))
        self.preparers = tuple(c for c in self.concerns if hasattr(c, "prepare"))
        self.message_concerns = tuple(c for c in self.concerns if hasattr(c, "on_message"))

    def prepare(self, info: MethodInfo) -> MethodInfo:
        for concern in self.preparers:
            try:
                concern.prepare(info)
            except Exception:
                report_hook_failure(concern, "prepare")
        return info

    def start(self, state: CallState) -> None:
        """Start every concern; on RejectCall finish the ones already started, then re-raise."""
        for index, concern in enumerate(self.concerns):
            try:
                concern.on_start(state)
            except RejectCall as reject:
                state.code = reject.code
                state.details = reject.details
                self.finish(state, reversed(self.concerns[:index]))
                raise
            except Exception:
                report_hook_failure(concern, "on_start")

    def finish(self, state: CallState, concerns: Iterable[Concern] | None = None) -> None:
        """Finish ``concerns`` (default: all, in reverse order)."""
        state.duration = perf_counter() - state.start
        for concern in self.reversed if concerns is None else concerns:
            try:
                concern.on_finish(state)
            except Exception:
                report_hook_failure(concern, "on_finish")

    def message(self, state: CallState, received: bool) -> None:
        """Count a message; per-message hooks run for streams only (unary counts are final at
        finish, where concerns read ``state.msgs_received`` / ``msgs_sent``)."""
        if received:
            state.msgs_received += 1
        else:
            state.msgs_sent += 1
        if state.info.kind is RpcKind.UNARY:
            return
        for concern in self.message_concerns:
            try:
                concern.on_message(state, received)
            except Exception:
                report_hook_failure(concern, "on_message")
