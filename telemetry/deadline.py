"""Whole-chain deadline propagation.

grpc Python does not carry a handler's remaining deadline into the calls it makes (Go does). The
server concern records the incoming call's absolute deadline in a ContextVar; the client concern sends
``min(explicit timeout, remaining)`` and refuses with DEADLINE_EXCEEDED, without touching the network,
when nothing remains. :func:`deadline_scope` sets a chain deadline at an entry point that is not a gRPC
server (an HTTP gateway, a batch job).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc

from telemetry.rpc.call import CallState, RejectCall

# The chain deadline: an absolute time on the monotonic clock (set by deadline_scope), or the
# incoming call's servicer context, asked only when an outgoing call or remaining() needs it.
_deadline: ContextVar[Any] = ContextVar("telemetry_deadline", default=None)

# Sync grpc reports "no deadline" as a huge time_remaining(), aio as None; beyond a year is none.
_NO_DEADLINE = 365 * 24 * 3600.0


def _left(value: Any, clock: Callable[[], float]) -> float | None:
    """Seconds left of a ``_deadline`` value, or None when there is no deadline."""
    if value is None:
        return None
    if isinstance(value, float):
        return value - clock()
    left = value.time_remaining()
    return None if left is None or left > _NO_DEADLINE else max(left, 0.0)


def remaining(clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds left of the current chain deadline, or None when there is none."""
    return _left(_deadline.get(), clock)


@contextmanager
def deadline_scope(timeout: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside get at most ``timeout`` seconds (or less, if an outer deadline is closer)."""
    outer = _left(_deadline.get(), clock)
    token = _deadline.set(clock() + (timeout if outer is None else min(outer, timeout)))
    try:
        yield
    finally:
        _deadline.reset(token)


class ServerDeadline:
    """Records the incoming call's deadline for the handler and the calls it makes."""

    def on_start(self, state: CallState) -> None:
        state.deadline_token = _deadline.set(state.context)  # read lazily: most calls never ask

    def on_finish(self, state: CallState) -> None:
        if state.deadline_token is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager on every call
                _deadline.reset(state.deadline_token)
            except ValueError:  # finished in another context (a done-callback): nothing to undo
                pass


class ClientDeadline:
    """Applies the chain deadline to outgoing calls; fails fast when it has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def on_start(self, state: CallState) -> None:
        left = _left(_deadline.get(), self._clock)
        if left is None:
            return
        if left <= 0:
            raise RejectCall(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "deadline exceeded before the call was sent (propagated from the caller)",
            )
        if state.timeout is None or left < state.timeout:
            state.timeout = left

    def on_finish(self, state: CallState) -> None:
        pass
