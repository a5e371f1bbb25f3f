"""The built-in mechanisms as gates (:mod:`telemetry.governance.gate`): thin adapters that keep
the algorithms' own APIs (``try_acquire``/``release``, ``on_success``/``on_failure`` ...) intact.

Each maps an :class:`~telemetry.governance.gate.Outcome` to its algorithm's words:

* limiters and bulkheads release their slot, however the call ended;
* a breaker counts a success or a failure, and hands a probe back when the outcome says nothing
  about the target (Verdict.IGNORED, which includes a call a later gate refused);
* a throttle counts the target's acceptance or overload refusal of what was actually sent
  (Google SRE book, "Handling Overload": requests vs accepts);
* the adaptive limiter ends its in-flight call, feeding its window only with calls that were not
  refused for load.
"""

from __future__ import annotations

from collections.abc import Callable

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.codel import QueueDelayGate
from telemetry.governance.degrade import Priority, PriorityShedder
from telemetry.governance.gate import PASS, Admitted, CallEnv, Outcome, Verdict
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import LeakyBucketLimiter, RateLimiter
from telemetry.governance.throttle import AdaptiveThrottle

__all__ = [
    "AdaptiveGate",
    "BreakerGate",
    "KeyedGate",
    "LeakyGate",
    "LimiterGate",
    "QueueGate",
    "ShedGate",
    "ThrottleGate",
    "limiter_gate",
]


class LimiterGate:
    """A rate limiter or bulkhead: a slot per call, released when it ends."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return self if self.limiter.try_acquire() else None

    def done(self, outcome: Outcome, duration: float) -> None:
        self.limiter.release()

    def refusal(self) -> tuple[str, float | None]:
        return "limit", self.limiter.retry_after()


class LeakyGate(LimiterGate):
    """A leaky bucket with a bounded wait: a call waits its turn (it is admitted "after a
    wait") -- a sync handler thread sleeps, a grpc.aio call is held by its coroutine (the loop
    runs on) -- and is refused when its turn is further than ``max_wait``. Admissions are so
    spaced ``1/limit`` apart: a bunch of calls that arrived together is served one by one
    instead of its first being admitted and the rest refused. Where neither is possible it
    refuses at once."""

    __slots__ = ()
    limiter: LeakyBucketLimiter

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        sleep, defer = env.sleep, env.defer
        if sleep is None and defer is None:
            return self if self.limiter.try_acquire() else None
        wait = self.limiter.reserve()
        if wait is None:
            return None
        if wait > 0:
            if sleep is not None:
                sleep(wait)
            elif defer is not None:
                defer(call, wait)
        return self


class KeyedGate:
    """A limiter per key (per user, per peer ...): the key's own limiter is the completion."""

    __slots__ = ("_limiters", "_source")

    def __init__(self, limiters: KeyedLimiter, source: str) -> None:
        self._limiters = limiters
        self._source = source

    @property
    def limiters(self) -> KeyedLimiter:
        return self._limiters

    @property
    def source(self) -> str:
        return self._source

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        key = env.key(call, self._source)
        limiters = self._limiters
        if key in limiters.allow:
            return PASS
        limiter = limiters.limiter_for(key)
        return LimiterGate(limiter) if limiter.try_acquire() else None

    def refusal(self) -> tuple[str, float | None]:
        # The caller's own limit: another instance must not take the call instead.
        return f"limit for {self._source}", None


def limiter_gate(limiter: RateLimiter) -> LimiterGate:
    return LeakyGate(limiter) if isinstance(limiter, LeakyBucketLimiter) else LimiterGate(limiter)


class BreakerGate:
    __slots__ = ("breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return self if self.breaker.try_acquire() else None

    def done(self, outcome: Outcome, duration: float) -> None:
        verdict = outcome.verdict
        if verdict is Verdict.SUCCESS:
            self.breaker.on_success(duration)
        elif verdict is Verdict.FAILURE:
            self.breaker.on_failure(duration)
        else:
            self.breaker.on_ignored()

    def refusal(self) -> tuple[str, float | None]:
        return "breaker", self.breaker.retry_after()


class ThrottleGate:
    __slots__ = ("throttle",)

    def __init__(self, throttle: AdaptiveThrottle) -> None:
        self.throttle = throttle

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return self if self.throttle.try_acquire() else None

    def done(self, outcome: Outcome, duration: float) -> None:
        if not outcome.sent:
            return  # never reached the target: it neither accepted nor refused it
        if outcome.overload:
            self.throttle.on_rejected()
        else:
            self.throttle.on_accepted()

    def refusal(self) -> tuple[str, float | None]:
        return "limit", None


class AdaptiveGate:
    __slots__ = ("limiter",)

    def __init__(self, limiter: AdaptiveLimiter) -> None:
        self.limiter = limiter

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return self if self.limiter.try_acquire() else None

    def done(self, outcome: Outcome, duration: float) -> None:
        self.limiter.on_done(duration, outcome.sent and not outcome.overload)

    def refusal(self) -> tuple[str, float | None]:
        return self.limiter.reason or "overload", 0.1


class ShedGate:
    """Priority shedding under CPU pressure, for one method's priority and kind (read or write)."""

    __slots__ = ("_cpu", "_priority", "_shedder", "_write")

    def __init__(
        self, shedder: PriorityShedder, priority: Priority, write: bool, cpu: Callable[[], float]
    ) -> None:
        self._shedder = shedder
        self._priority = priority
        self._write = write
        self._cpu = cpu

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        return None if self._shedder.should_shed(self._priority, self._write, self._cpu()) else PASS

    def refusal(self) -> tuple[str, float | None]:
        return f"cpu pressure, {self._priority.name.lower()} priority", 1.0


class QueueGate:
    """A standing queue (sync servers): refuse calls that waited long, cheaply, so the queue
    drains and the calls that run are fresh enough to meet their deadlines (CoDel)."""

    __slots__ = ("_gate",)

    def __init__(self, gate: QueueDelayGate) -> None:
        self._gate = gate

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        waited = env.queue_delay()
        return None if waited is not None and not self._gate.admit(waited) else PASS

    def refusal(self) -> tuple[str, float | None]:
        return "queue", 0.1
