"""Retries as sans-IO decision objects: policy (exponential backoff with jitter), budget, and the
per-call loop state (:class:`RetryCall`) that every retrying call site drives.

``RetryPolicy`` only computes delays; ``RetryBudget`` only says whether one more retry may go. Which
calls are idempotent and which status codes are retryable is the caller's (the adapter's) decision, as
is the sleeping: nothing here waits, so the same objects serve threads and asyncio.

One engine for every retry (the SRE book's "retry at one layer only"): a call gets ONE
:class:`RetryPlan` -- policy, retryable codes, budget -- and ONE :class:`RetryCall` walking it; the
caller's loop (sync or asyncio, whichever sleep it has, like tenacity's ``Retrying`` and
``AsyncRetrying`` around one ``RetryCallState``) asks it after each failed attempt how long to wait,
or whether to stop. Balanced channels supply the next instance; plain channels call the same one.
Servers steer it with grpc's retry pushback (gRFC A6: trailing ``grpc-retry-pushback-ms``; a
non-negative integer is the delay to use instead of the backoff, anything else means do not
retry), and a failure that relays a refusal from further down the chain is never retried: another
instance sits in front of the same refusing dependency.

The budget follows Finagle's ``RetryBudget`` / Linkerd's retry budget / Envoy's retry budget: over a
sliding window of ``window`` seconds, at most ``min_per_second * window + ratio * calls`` retries are
allowed, where ``calls`` counts first attempts. A floor keeps low-traffic clients able to retry; the
ratio keeps retries from multiplying load (at most ``1 + ratio`` times the original traffic) when the
backend is failing, so retries cannot amplify an outage.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from telemetry.backoff import RetryPolicy
from telemetry.governance._types import Clock, RandomSource, default_random, monotonic

__all__ = ["RetryBudget", "RetryCall", "RetryPlan", "RetryPolicy"]

# Absorbs float error in ``ratio * calls`` (0.29 * 100 == 28.999999999999996).
_EPSILON = 1e-9


class RetryBudget:
    """Retries allowed over a sliding window: ``min_per_second * window + ratio * calls``.

    ``on_call`` records a first attempt; ``try_spend`` asks for one retry and records it when granted.
    The window is ``buckets`` equal time buckets (10 by default), so counts leave it in steps of
    ``window / buckets`` seconds. Thread- and asyncio-safe; the lock guards a few counter updates.
    """

    __slots__ = (
        "_b_calls",
        "_b_retries",
        "_bucket_duration",
        "_buckets",
        "_calls",
        "_clock",
        "_floor",
        "_head",
        "_head_end",
        "_lock",
        "_ratio",
        "_retries",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_per_second: float = 1.0,
        window: float = 10.0,
        buckets: int = 10,
        clock: Clock = monotonic,
    ) -> None:
        """``ratio``: retries earned per first attempt; ``min_per_second``: retries always allowed."""
        if not (ratio >= 0.0 and math.isfinite(ratio)):
            raise ValueError(f"ratio must be a finite number >= 0, got {ratio!r}")
        if not (min_per_second >= 0.0 and math.isfinite(min_per_second)):
            raise ValueError(f"min_per_second must be a finite number >= 0, got {min_per_second!r}")
        if not (window > 0.0 and math.isfinite(window)):
            raise ValueError(f"window must be a finite number > 0, got {window!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        self._ratio = float(ratio)
        self._floor = min_per_second * window
        self._buckets = buckets
        self._bucket_duration = window / buckets
        self._clock = clock
        self._lock = threading.Lock()
        self._b_calls = [0] * buckets
        self._b_retries = [0] * buckets
        self._calls = 0
        self._retries = 0
        self._head = math.floor(clock() / self._bucket_duration)
        self._head_end = (self._head + 1) * self._bucket_duration

    def _advance(self, now: float) -> None:
        """Expire buckets that left the window (lock held; only once ``now >= _head_end``)."""
        slot = math.floor(now / self._bucket_duration)
        head = self._head
        if slot <= head:
            return
        size = self._buckets
        b_calls, b_retries = self._b_calls, self._b_retries
        if slot - head >= size:
            for i in range(size):
                b_calls[i] = b_retries[i] = 0
            self._calls = self._retries = 0
        else:
            for s in range(head + 1, slot + 1):
                i = s % size
                self._calls -= b_calls[i]
                self._retries -= b_retries[i]
                b_calls[i] = b_retries[i] = 0
        self._head = slot
        self._head_end = (slot + 1) * self._bucket_duration

    def on_call(self) -> None:
        """A first attempt was made (retries are not calls: they do not earn budget)."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            self._b_calls[self._head % self._buckets] += 1
            self._calls += 1

    def try_spend(self) -> bool:
        """May one retry go? Records it when True."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            if self._retries + 1 > self._floor + self._ratio * self._calls + _EPSILON:
                return False
            self._b_retries[self._head % self._buckets] += 1
            self._retries += 1
            return True

    @property
    def calls(self) -> int:
        """First attempts in the window."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            return self._calls

    @property
    def retries(self) -> int:
        """Retries spent in the window."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            return self._retries

    @property
    def available(self) -> int:
        """Retries that may still be spent now."""
        now = self._clock()
        with self._lock:
            if now >= self._head_end:
                self._advance(now)
            allowed = math.floor(self._floor + self._ratio * self._calls + _EPSILON)
            return max(0, allowed - self._retries)


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """What one call may retry: ``codes`` (a status the caller compares with ``in``), the
    ``policy`` (attempts, backoff) and the ``budget`` it draws from (shared by the target's calls)."""

    policy: RetryPolicy
    codes: Collection[Any]
    budget: RetryBudget | None = None
    on_decision: Callable[[str, str], None] | None = None
    """Called with (outcome, reason) for each retry granted ("retried") or refused by the budget
    ("rejected"): governance counts them."""
    random: RandomSource = default_random
    """Draws the backoff's jitter (governance passes its injected source)."""


# Why a RetryCall stopped (RetryCall.stopped).
STOP_CODE = "code"
STOP_PUSHBACK = "pushback"
STOP_RELAYED = "relayed"
STOP_ATTEMPTS = "attempts"
STOP_TIME = "time"
STOP_BUDGET = "budget"


class RetryCall:
    """One call's walk through its plan (tenacity's ``RetryCallState`` plus the stop/wait
    decisions), sans IO: after each failed attempt, :meth:`next_delay` says how long to wait
    before the next one, or None to give up (``stopped`` says why).

    ``give_up_at`` (the caller's own timeout, on ``clock``) and ``time_left`` (a whole-chain
    deadline, seconds or None) stop retries that could not finish in time. First attempts are
    counted in the budget (``budget.on_call()``) by whoever starts calls, not here: a RetryCall is
    only made once a call has failed, so calls that succeed allocate nothing.
    """

    __slots__ = ("_clock", "_give_up_at", "_plan", "_random", "_time_left", "attempt", "stopped")

    def __init__(
        self,
        plan: RetryPlan,
        *,
        clock: Clock = monotonic,
        give_up_at: float | None = None,
        time_left: Callable[[], float | None] | None = None,
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._random = plan.random
        self._give_up_at = give_up_at
        self._time_left = time_left
        self.attempt = 1
        self.stopped = ""

    def next_delay(
        self,
        code: Any,
        pushback: float | None = None,
        relayed: bool = False,
        *,
        elsewhere: bool = False,
    ) -> float | None:
        """Attempt ``attempt`` failed with ``code`` (``pushback``: the server's, parsed, negative
        meaning do not retry; ``relayed``: the failure relays a refusal from further down;
        ``elsewhere``: the next attempt goes to another target, so the failed one's pushback and
        the backoff do not apply). Seconds to wait before the next attempt (``attempt`` is then
        advanced and the retry taken from the budget), or None: give up (``stopped`` says why).
        A pushback longer than the policy's ``max_backoff`` gives up too: a server asking for a
        long wait is better answered now than by a caller's thread held that long."""
        plan = self._plan
        delay = 0.0
        if code not in plan.codes:
            why = STOP_CODE
        elif relayed:
            why = STOP_RELAYED
        elif pushback is not None and (
            pushback < 0 or (not elsewhere and pushback > plan.policy.max_backoff)
        ):
            why = STOP_PUSHBACK
        elif self.attempt >= plan.policy.max_attempts:
            why = STOP_ATTEMPTS
        else:
            if not elsewhere:
                delay = plan.policy.backoff(self.attempt + 1, self._random)
                delay = pushback if pushback is not None else delay
            why = self._no_time_for(delay)
            if not why and plan.budget is not None and not plan.budget.try_spend():
                self._report("rejected", "retry budget exhausted")
                why = STOP_BUDGET
        if why:
            self.stopped = why
            return None
        self.attempt += 1
        self._report("retried", f"{getattr(code, 'name', code)}, attempt {self.attempt}")
        return delay

    def _no_time_for(self, delay: float) -> str:
        """STOP_TIME when a retry after ``delay`` would start past the caller's timeout or the
        chain's deadline, else ""."""
        if self._give_up_at is not None and self._clock() + delay >= self._give_up_at:
            return STOP_TIME
        left = self._time_left() if self._time_left is not None else None
        return STOP_TIME if left is not None and left <= delay else ""

    def remaining(self) -> float | None:
        """Seconds left of the caller's own timeout (None: it set none)."""
        return None if self._give_up_at is None else self._give_up_at - self._clock()

    def _report(self, outcome: str, reason: str) -> None:
        hook = self._plan.on_decision
        if hook is not None:
            with contextlib.suppress(Exception):  # counting must never fail the call
                hook(outcome, reason)
