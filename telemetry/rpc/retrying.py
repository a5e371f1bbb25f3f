"""The retry loop's shared step for every channel (sync, aio, balanced): one
:class:`~telemetry.governance.retry.RetryCall` per failed call, fed the status and the server's
hints (retry pushback, relayed refusal) from the attempt's trailing metadata. The loops around it
differ only in how they sleep and where the next attempt goes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from telemetry import deadline
from telemetry.governance.retry import RetryCall, RetryPlan
from telemetry.rpc.relay import retry_hints

__all__ = ["new_retry_call", "next_delay"]


def new_retry_call(
    plan: RetryPlan, give_up_at: float | None, clock: Callable[[], float] = time.monotonic
) -> RetryCall:
    """The retry state of one call: the caller's timeout as ``give_up_at`` on ``clock``, the
    whole chain's deadline (the call being served) read at each decision."""
    return RetryCall(plan, clock=clock, give_up_at=give_up_at, time_left=deadline.remaining)


def next_delay(
    retrying: RetryCall,
    code: Any,
    trailing_metadata: Iterable[tuple[str, Any]] | None,
    *,
    elsewhere: bool = False,
) -> float | None:
    """Seconds before the next attempt after one failed with ``code``, or None: give up
    (``elsewhere``: the next attempt goes to another target, at once)."""
    pushback, relays = retry_hints(trailing_metadata)
    return retrying.next_delay(code, pushback, relays, elsewhere=elsewhere)
