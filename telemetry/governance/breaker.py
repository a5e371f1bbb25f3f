"""Circuit breaker: a sliding failure/slow-call window, backed-off open waits and a recovery ramp.

The state machine follows resilience4j (count or time sliding window, ``minimum_calls``, failure-rate and
slow-call-rate thresholds, a bounded number of half-open probes), with two additions:

* **Backoff.** Each reopen from half-open multiplies the open wait by ``backoff_multiplier``, capped
  at ``max_open_wait`` (30 s by default); a successful close resets it to ``open_wait``. Only the
  target's own failures reopen: a probe whose result says nothing about the target (the caller
  reports ``on_ignored``: a refusal relayed from further down, a limit answering, a cancelled
  call) hands its permit back, so the wait does not grow while a dependency's breaker is open.
* **Recovery ramp.** Peers hand a recovering backend its full traffic at once (purgatory closes on one
  success; sentinel-golang lets every half-open request through). Here, once ``half_open_probes`` probes
  have succeeded, the breaker admits each call with probability ``ramp_steps[i]`` (the rest fail
  fast), stepping ``i`` up every ``ramp_step_duration`` seconds; reaching the last step (1.0) closes
  the breaker.

Recovery in detail (the state stays ``HALF_OPEN`` throughout; ``ramping`` and ``admitted_share`` tell the
phases apart, so the exported gauge keeps its three familiar values):

1. *Probing.* At most ``half_open_probes`` calls are in flight at once. Any probe failure reopens at once
   (reason ``"probe_failed"``). When ``half_open_probes`` probes have succeeded, the breaker reopens
   if the slow-call rate of the probes breaches ``slow_call_rate_threshold``, else it starts ramping.
2. *Ramping.* Results keep filling the window, which was emptied when half-open began, so the probes'
   successes are its base. The breaker reopens as soon as that window's failure rate or slow-call rate
   reaches its threshold -- ``minimum_calls`` is waived, the probes already proved a minimum -- or
   ``consecutive_failures`` is hit. A single failure therefore does not undo a ramp (a healthy backend
   with a small baseline error rate would otherwise flap forever), while a real relapse (for the
   defaults: as many failures as successes) reopens within a few calls. The share is a function of the
   time since ramping began; it cannot step up past a breach because a breach reopens.

The recovery timeline, from the moment the target is healthy again: the rest of the open wait
(at most ``max_open_wait``), then ``half_open_probes`` successful probes (a round trip each, run
concurrently), then the ramp, ``(len(ramp_steps) - 1) * ramp_step_duration`` seconds, during which
the refused share falls step by step to 0. With the defaults that is at most 30 + ~0 + 6 s; the demo
shop uses a 2 s wait capped at 4 s and one 0.5 s step at half the traffic: at most ~4.5 s, plus the
timeout of a probe still in flight when the target recovered (a slow target's probe fails late).

Transitions are lazy: the ``OPEN -> HALF_OPEN`` move and ramp steps happen in the next ``try_acquire`` /
``on_*`` call, not on a timer, and ``state`` is a plain read. ``on_transition(old, new, reason)`` is
called after the lock is released, so it may call back into the breaker; under contention two callbacks
may run concurrently or in a different order than the transitions. Reasons: ``"failure_rate"``,
``"slow_call_rate"``, ``"consecutive_failures"``, ``"open_wait_elapsed"``, ``"probe_failed"``,
``"recovered"``, ``"forced_open"``, ``"forced_closed"``, ``"reset"``.

Results of calls that cannot be matched to the current phase are dropped: results arriving while open,
and probe results arriving when no probe permit is outstanding (a call admitted before the breaker
opened). The API carries no permit token, so this is a best-effort match.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable

from telemetry.governance._breaker_args import (
    check_backoff,
    check_recovery,
    check_thresholds,
    check_window,
)
from telemetry.governance._types import Clock, RandomSource, default_random, monotonic
from telemetry.governance.breaker_windows import FAILURE, SLOW, CountWindow, TimeWindow

__all__ = ["BreakerState", "CircuitBreaker", "TransitionListener"]

_log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    """Breaker states; the int values are exported as a gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2
    FORCED_OPEN = 3
    """Rejects everything until ``force_closed()`` or ``reset()``."""
    FORCED_CLOSED = 4
    """Admits everything (results still feed the rates) until ``force_open()`` or ``reset()``."""


TransitionListener = Callable[[BreakerState, BreakerState, str], None]
"""``(old, new, reason)``, called outside the breaker's lock."""

_Transition = tuple[BreakerState, BreakerState, str]

# Module-level aliases: an ``is`` test against a global is cheaper than an enum attribute lookup.
_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN
_OPEN = BreakerState.OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_FORCED_CLOSED = BreakerState.FORCED_CLOSED


class CircuitBreaker:
    """A thread- and asyncio-safe circuit breaker (see the module docstring for the semantics).

    Usage: ``if not breaker.try_acquire(): fail fast``; otherwise make the call and report exactly one
    of ``on_success(duration)``, ``on_failure(duration)`` or ``on_ignored()``. The lock is only held
    for bookkeeping, never during the call, so calls through one breaker run concurrently.
    """

    __slots__ = (
        "_admit_all",
        "_backoff_multiplier",
        "_clock",
        "_consecutive",
        "_consecutive_limit",
        "_failure_threshold",
        "_half_open_probes",
        "_in_flight",
        "_lock",
        "_max_open_wait",
        "_min_calls",
        "_on_transition",
        "_open_until",
        "_open_wait",
        "_probe_successes",
        "_ramp_start",
        "_ramp_step_duration",
        "_ramp_steps",
        "_ramping",
        "_random",
        "_slow_call_duration",
        "_slow_threshold",
        "_state",
        "_timed",
        "_wait",
        "_window",
    )

    def __init__(
        self,
        *,
        window_type: str = "count",
        window_size: int = 20,
        minimum_calls: int = 10,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float = 1.0,
        consecutive_failures: int = 0,
        open_wait: float = 5.0,
        max_open_wait: float = 30.0,
        backoff_multiplier: float = 2.0,
        half_open_probes: int = 3,
        ramp_steps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0),
        ramp_step_duration: float = 2.0,
        on_transition: TransitionListener | None = None,
        clock: Clock = monotonic,
        random: RandomSource = default_random,
    ) -> None:
        """Validate and store the configuration; the breaker starts CLOSED with an empty window.

        ``window_size`` counts calls (``window_type="count"``) or one-second buckets (``"time"``). With
        a count window, ``minimum_calls`` larger than ``window_size`` is clamped to it (as resilience4j
        does); otherwise the breaker could never open. ``ramp_steps`` must be strictly increasing in
        (0, 1] and end with 1.0; an empty tuple closes straight after the probes (classic half-open).
        """
        check_window(window_type, window_size, minimum_calls)
        check_thresholds(
            failure_rate_threshold, slow_call_rate_threshold, slow_call_duration, consecutive_failures
        )
        check_backoff(open_wait, max_open_wait, backoff_multiplier)
        steps = check_recovery(half_open_probes, ramp_steps, ramp_step_duration)
        if on_transition is not None and not callable(on_transition):
            raise ValueError(f"on_transition must be callable or None, got {on_transition!r}")

        self._timed = window_type == "time"
        self._window: CountWindow | TimeWindow = (
            TimeWindow(window_size, clock()) if self._timed else CountWindow(window_size)
        )
        self._min_calls = minimum_calls if self._timed else min(minimum_calls, window_size)
        self._failure_threshold = float(failure_rate_threshold)
        self._slow_threshold = float(slow_call_rate_threshold)
        self._slow_call_duration = float(slow_call_duration)
        self._consecutive_limit = consecutive_failures
        self._open_wait = float(open_wait)
        self._max_open_wait = float(max_open_wait)
        self._backoff_multiplier = float(backoff_multiplier)
        self._half_open_probes = half_open_probes
        self._ramp_steps = steps
        self._ramp_step_duration = float(ramp_step_duration)
        self._on_transition = on_transition
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()

        self._state = _CLOSED
        self._admit_all = True  # the lock-free fast path of try_acquire reads only this
        self._ramping = False
        self._in_flight = 0  # outstanding probe permits (probing phase only)
        self._probe_successes = 0
        self._consecutive = 0  # failures in a row
        self._wait = self._open_wait  # the next open wait; grows on each reopen from half-open
        self._open_until = 0.0
        self._ramp_start = 0.0

    # -- admission -------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """May this call go? ``False`` means fail fast (UNAVAILABLE or a fallback)."""
        if self._admit_all:  # CLOSED / FORCED_CLOSED: one attribute read, no lock
            return True
        return self._acquire_slow()

    def _acquire_slow(self) -> bool:
        transition: _Transition | None = None
        share = 1.0
        with self._lock:
            state = self._state
            if state is _OPEN:
                now = self._clock()
                if now < self._open_until:
                    return False
                self._enter_half_open(now)
                self._in_flight = 1  # this call is the first probe
                transition = (_OPEN, _HALF_OPEN, "open_wait_elapsed")
            elif state is _HALF_OPEN:
                if not self._ramping:
                    if self._in_flight >= self._half_open_probes:
                        return False
                    self._in_flight += 1
                    return True
                now = self._clock()
                share = self._ramp_share(now)
                if share >= 1.0:
                    transition = self._close(now)
            elif state is _FORCED_OPEN:
                return False
            # else: CLOSED / FORCED_CLOSED, reached by racing a transition; admit.
        if transition is not None:
            self._notify(transition)
        if share >= 1.0:
            return True
        # The draw needs no lock: random.random is atomic, and an injected source is the caller's.
        return self._random() < share

    # -- results ---------------------------------------------------------------------------------

    def on_success(self, duration: float) -> None:
        """Report an admitted call that succeeded after ``duration`` seconds."""
        outcome = SLOW if duration >= self._slow_call_duration else 0
        now = self._clock() if self._timed else 0.0
        with self._lock:
            if self._state is _CLOSED:
                self._consecutive = 0
                window = self._window
                window.add(outcome, now)
                calls = window.calls
                # In a count window a fast success cannot raise either rate, so the verdict can only
                # change on the call that reaches minimum_calls. A time window also loses calls to
                # expiry, which can raise a rate, so it always re-checks.
                if calls < self._min_calls or (
                    (outcome == 0 and not self._timed and calls != self._min_calls)
                    or (
                        window.failures / calls < self._failure_threshold
                        and window.slow / calls < self._slow_threshold
                    )
                ):
                    return
                transition: _Transition | None = self._open_from_closed()
            else:
                transition = self._success_slow(outcome)
        if transition is not None:
            self._notify(transition)

    def on_failure(self, duration: float) -> None:
        """Report an admitted call that failed (as classified by the caller) after ``duration`` s."""
        outcome = FAILURE | SLOW if duration >= self._slow_call_duration else FAILURE
        with self._lock:
            transition = self._failure_locked(outcome)
        if transition is not None:
            self._notify(transition)

    def on_ignored(self) -> None:
        """Report an admitted call whose result counts neither way; frees its half-open probe permit."""
        if self._state is not _HALF_OPEN:
            return
        with self._lock:
            if self._state is _HALF_OPEN and not self._ramping and self._in_flight > 0:
                self._in_flight -= 1

    def _success_slow(self, outcome: int) -> _Transition | None:
        state = self._state
        if state is _HALF_OPEN:
            now = self._clock()
            window = self._window
            if not self._ramping:
                if self._in_flight == 0:
                    return None  # no probe outstanding: a stale result from before the breaker opened
                self._in_flight -= 1
                window.add(outcome, now)
                self._probe_successes += 1
                if self._probe_successes < self._half_open_probes:
                    return None
                if window.slow / window.calls >= self._slow_threshold:
                    return self._reopen("slow_call_rate", now)
                self._ramping = True
                self._ramp_start = now
                return self._close(now) if self._ramp_share(now) >= 1.0 else None
            self._consecutive = 0
            window.add(outcome, now)
            reason = self._breach(1)
            if reason is not None:
                return self._reopen(reason, now)
            return self._close(now) if self._ramp_share(now) >= 1.0 else None
        if state is _FORCED_CLOSED:
            self._consecutive = 0
            self._window.add(outcome, self._clock())
        return None  # OPEN / FORCED_OPEN: nobody was admitted in this phase; drop the result

    def _failure_locked(self, outcome: int) -> _Transition | None:
        state = self._state
        if state is _CLOSED or state is _FORCED_CLOSED:
            self._consecutive += 1
            window = self._window
            window.add(outcome, self._clock() if self._timed else 0.0)
            if state is _FORCED_CLOSED:
                return None
            limit = self._consecutive_limit
            if limit and self._consecutive >= limit:
                return self._open_from_closed("consecutive_failures")
            return None if self._breach(self._min_calls) is None else self._open_from_closed()
        if state is _HALF_OPEN:
            now = self._clock()
            if not self._ramping:
                if self._in_flight == 0:
                    return None  # stale, see _success_slow
                return self._reopen("probe_failed", now)
            self._consecutive += 1
            self._window.add(outcome, now)
            limit = self._consecutive_limit
            if limit and self._consecutive >= limit:
                return self._reopen("consecutive_failures", now)
            reason = self._breach(1)
            return None if reason is None else self._reopen(reason, now)
        return None  # OPEN / FORCED_OPEN

    # -- transitions (called with the lock held) -------------------------------------------------

    def _breach(self, min_calls: int) -> str | None:
        window = self._window
        calls = window.calls
        if calls == 0 or calls < min_calls:
            return None
        # Divide rather than multiply the threshold: 3/10 and 0.3 round to the same double.
        if window.failures / calls >= self._failure_threshold:
            return "failure_rate"
        if window.slow / calls >= self._slow_threshold:
            return "slow_call_rate"
        return None

    def _open_from_closed(self, reason: str | None = None) -> _Transition:
        if reason is None:
            reason = self._breach(self._min_calls) or "failure_rate"
        self._set_open(self._clock())
        return (_CLOSED, _OPEN, reason)

    def _reopen(self, reason: str, now: float) -> _Transition:
        self._wait = min(self._wait * self._backoff_multiplier, self._max_open_wait)
        self._set_open(now)
        return (_HALF_OPEN, _OPEN, reason)

    def _set_open(self, now: float) -> None:
        self._admit_all = False
        self._state = _OPEN
        self._ramping = False
        self._in_flight = 0
        self._open_until = now + self._wait

    def _enter_half_open(self, now: float) -> None:
        self._state = _HALF_OPEN
        self._ramping = False
        self._in_flight = 0
        self._probe_successes = 0
        self._consecutive = 0
        self._window.clear(now)  # the half-open verdict is about the backend as it is now

    def _close(self, now: float) -> _Transition:
        old = self._state
        self._state = _CLOSED
        self._ramping = False
        self._in_flight = 0
        self._consecutive = 0
        self._wait = self._open_wait
        self._window.clear(now)
        self._admit_all = True  # last: lock-free readers see CLOSED only once it is fully set up
        return (old, _CLOSED, "recovered")

    def _ramp_share(self, now: float) -> float:
        steps = self._ramp_steps
        if len(steps) <= 1:
            return 1.0
        index = int((now - self._ramp_start) // self._ramp_step_duration)
        if index >= len(steps) - 1:
            return 1.0
        return steps[max(index, 0)]

    def _notify(self, transition: _Transition) -> None:
        callback = self._on_transition
        if callback is None:
            return
        try:
            callback(*transition)
        except Exception:
            # A broken listener must not turn a breaker decision into an error for the RPC.
            _log.exception("circuit breaker on_transition callback failed")

    # -- manual control --------------------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until ``force_closed()`` or ``reset()``."""
        self._force(_FORCED_OPEN, admit=False, reason="forced_open")

    def force_closed(self) -> None:
        """Admit every call (still counting results) until ``force_open()`` or ``reset()``."""
        self._force(_FORCED_CLOSED, admit=True, reason="forced_closed")

    def _force(self, state: BreakerState, *, admit: bool, reason: str) -> None:
        with self._lock:
            old = self._state
            self._state = state
            self._ramping = False
            self._in_flight = 0
            self._admit_all = admit
        if old is not state:
            self._notify((old, state, reason))

    def reset(self) -> None:
        """Back to automatic CLOSED with an empty window and the open wait reset to ``open_wait``."""
        with self._lock:
            old = self._state
            self._close(self._clock())
        if old is not _CLOSED:
            self._notify((old, _CLOSED, "reset"))

    # -- observation -----------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state (a plain read; pending time-driven transitions happen on the next call)."""
        return self._state

    @property
    def ramping(self) -> bool:
        """True in the ramp phase of HALF_OPEN (after the probes succeeded)."""
        return self._ramping

    @property
    def admitted_share(self) -> float:
        """Share of calls admitted: 1.0 closed, 0.0 open or probing, the ramp step while ramping."""
        with self._lock:
            state = self._state
            if state is _CLOSED or state is _FORCED_CLOSED:
                return 1.0
            if state is _HALF_OPEN and self._ramping:
                return self._ramp_share(self._clock())
            return 0.0

    @property
    def failure_rate(self) -> float:
        """Failures / calls in the current window (0.0 when the window is empty)."""
        with self._lock:
            window = self._window
            window.advance(self._clock() if self._timed else 0.0)
            return window.failures / window.calls if window.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls / calls in the current window (0.0 when the window is empty)."""
        with self._lock:
            window = self._window
            window.advance(self._clock() if self._timed else 0.0)
            return window.slow / window.calls if window.calls else 0.0

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through when OPEN; 0.0 in every other state.

        FORCED_OPEN also returns 0.0: there is no automatic deadline to advertise.
        """
        with self._lock:
            if self._state is not _OPEN:
                return 0.0
            return max(0.0, self._open_until - self._clock())
