"""Whole-chain deadline propagation.

grpc Python does not carry a handler's remaining deadline into the calls it makes (Go does). The
server concern records the incoming call's absolute deadline in a ContextVar; the client concern sends
``min(explicit timeout, remaining)`` and refuses with DEADLINE_EXCEEDED, without touching the network,
when nothing remains. :func:`deadline_scope` sets a chain deadline at an entry point that is not a gRPC
server (an HTTP gateway, a batch job).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import grpc

from telemetry.rpc.call import CallState, RejectCall

# Absolute deadline on the monotonic clock, or None.
_deadline: ContextVar[float | None] = ContextVar("telemetry_deadline", default=None)

# Anything beyond a year is no deadline.
_NO_DEADLINE = 365 * 24 * 3600.0


def remaining(clock: Callable[[], float] = time.monotonic) -> float | None:
    """Seconds left of the current chain deadline, or None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - clock()


@contextmanager
def deadline_scope(timeout: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Calls made inside get at most ``timeout`` seconds (or less, if an outer deadline is closer)."""
    deadline = clock() + timeout
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


class ServerDeadline:
    """Records the incoming call's deadline for the handler and the calls it makes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def on_start(self, state: CallState) -> None:
        # Sync contexts report no deadline as a huge number, aio ones as None.
        time_remaining = state.context.time_remaining()
        if time_remaining is None or time_remaining > _NO_DEADLINE:
            return
        state.deadline_token = _deadline.set(self._clock() + max(time_remaining, 0.0))

    def on_finish(self, state: CallState) -> None:
        if state.deadline_token is not None:
            # Finished in another context (a done-callback): nothing to undo there.
            with contextlib.suppress(ValueError):
                _deadline.reset(state.deadline_token)


class ClientDeadline:
    """Applies the chain deadline to outgoing calls; fails fast when it has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def on_start(self, state: CallState) -> None:
        deadline = _deadline.get()
        if deadline is None:
            return
        left = deadline - self._clock()
        if left <= 0:
            raise RejectCall(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "deadline exceeded before the call was sent (propagated from the caller)",
            )
        if state.timeout is None or left < state.timeout:
            state.timeout = left

    def on_finish(self, state: CallState) -> None:
        pass
