"""The retry loop's shared step for every channel (sync, aio, balanced): one
:class:`~telemetry.governance.retry.RetryCall` per failed call, fed the status and the server's
hints (retry pushback, relayed refusal) from the attempt's trailing metadata. The loops around it
differ only in how they sleep and where the next attempt goes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import grpc

from telemetry.governance.retry import RetryCall, RetryPlan
from telemetry.rpc import deadline
from telemetry.rpc.call import CallState
from telemetry.rpc.relay import MetadataItems, retry_hints

__all__ = ["Retrier", "new_retry_call", "next_delay", "retry_delay"]


@runtime_checkable
class Retrier(Protocol):
    """The concern that can retry failed calls (client governance)."""

    def retry_plan(self, state: CallState) -> RetryPlan | None: ...


def new_retry_call(
    plan: RetryPlan, give_up_at: float | None, clock: Callable[[], float] = time.monotonic
) -> RetryCall:
    """The retry state of one call: the caller's timeout as ``give_up_at`` on ``clock``, the
    whole chain's deadline (the call being served) read at each decision."""
    return RetryCall(plan, clock=clock, give_up_at=give_up_at, time_left=deadline.remaining)


def next_delay(
    retrying: RetryCall,
    code: grpc.StatusCode | None,
    trailing_metadata: MetadataItems | None,
    *,
    elsewhere: bool = False,
) -> float | None:
    """Seconds before the next attempt after one failed with ``code``, or None: give up
    (``elsewhere``: the next attempt goes to another target, at once)."""
    pushback, relays = retry_hints(trailing_metadata)
    return retrying.next_delay(code, pushback, relays, elsewhere=elsewhere)


def retry_delay(
    retrier: Retrier, state: CallState, retrying: RetryCall | None, give_up_at: float | None
) -> tuple[RetryCall, float] | None:
    """After the failed attempt ``state`` of a unary call: the call's retry state (``retrying``,
    made on its first failure) and the seconds to wait before its next attempt; None: it is not
    retried. The loops of the sync and aio channels share it."""
    if retrying is None:
        plan = retrier.retry_plan(state)
        if plan is None:
            return None
        retrying = new_retry_call(plan, give_up_at)
    delay = next_delay(retrying, state.code, state.trailing)
    return None if delay is None else (retrying, delay)
