"""Whole-chain deadline propagation.

grpc Python does not carry a handler's remaining deadline into the calls it makes (Go does). On a
server with :class:`ServerDeadline` the call being served (made current by the server's concern
chain) carries its deadline; the client concern sends ``min(explicit timeout, remaining)`` and refuses
with DEADLINE_EXCEEDED, without touching the network, when nothing remains. :func:`deadline_scope` sets
a chain deadline at an entry point that is not a gRPC server (an HTTP gateway, a batch job), or a
closer one inside a handler.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import grpc

from telemetry.rpc.call import CallState, MethodInfo, RejectCall, current_call

# A deadline_scope's deadline: an absolute time on the monotonic clock. It holds the served call's
# deadline too when set inside a handler, so it is asked first.
_deadline: ContextVar[float | None] = ContextVar("telemetry_deadline", default=None)

# Sync grpc reports "no deadline" as a huge time_remaining(), aio as None; beyond a year is none.
_NO_DEADLINE = 365 * 24 * 3600.0


def remaining(clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds left of the current chain deadline, or None when there is none."""
    scoped = _deadline.get()
    if scoped is not None:
        return scoped - clock()
    call = current_call.get()
    if call is None or ServerDeadline not in call.info.extras:
        return None
    left = call.context.time_remaining()  # asked only here: most calls never need it
    return None if left is None or left > _NO_DEADLINE else max(left, 0.0)


@contextmanager
def deadline_scope(timeout: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside get at most ``timeout`` seconds (or less, if an outer deadline is closer)."""
    outer = remaining(clock)
    token = _deadline.set(clock() + (timeout if outer is None else min(outer, timeout)))
    try:
        yield
    finally:
        _deadline.reset(token)


class ServerDeadline:
    """Makes the deadline of the call being served the chain deadline of the calls it makes."""

    def prepare(self, info: MethodInfo) -> None:
        info.extras[ServerDeadline] = True  # what remaining() looks for: no per-call work


class ClientDeadline:
    """Applies the chain deadline to outgoing calls; fails fast when it has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def on_start(self, state: CallState) -> None:
        left = remaining(self._clock)
        if left is None:
            return
        if left <= 0:
            raise RejectCall(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "deadline exceeded before the call was sent (propagated from the caller)",
            )
        if state.timeout is None or left < state.timeout:
            state.timeout = left
