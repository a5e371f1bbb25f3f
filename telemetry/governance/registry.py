"""Which per-method mechanisms exist, in what order they admit a call, and what one instance serves.

Each :class:`MechanismSpec` says where its rule is in a method's rules, what one instance of it
serves (its scope), how to build the instance from the rule (the engine keeps it while the rule
stands, so an open breaker stays open across rule changes), and how to wrap it as a
:class:`~telemetry.governance.gate.Gate` for a plan. The engine and the concerns read only these
specs: adding a mechanism is its module, its rule in ``rules.py`` and one line in ``SERVER`` or
``CLIENT`` below.

Service-wide mechanisms (priority shedding, the queue-delay gate, the adaptive limiter) come from
the service's own rules, not a method's, and the engine builds them once per rules generation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from telemetry.governance import brownout
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.gate import BuildContext, Gate, Mechanism
from telemetry.governance.gates import BreakerGate, KeyedGate, LimiterGate, ThrottleGate, limiter_gate
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import ConcurrencyLimiter, build_limiter
from telemetry.governance.rules import BreakerRule, BulkheadRule, RateLimitRule, ThrottleRule
from telemetry.governance.throttle import AdaptiveThrottle

__all__ = ["CLIENT", "SERVER", "MechanismSpec", "Scope"]

Scope = Literal["any", "pattern", "target", "target_pattern", "target_method"]
"""What one instance serves: the whole service (``any``), a rule pattern (``pkg.Svc/*`` is one
limiter for the service), a target (one throttle per downstream), a target and pattern, or a
target and method (one breaker per method, so its metrics never show two states)."""


@dataclass(frozen=True, slots=True)
class MechanismSpec:
    name: str  # the rule field, and the mechanism label of its decisions
    scope: Scope
    build: Callable[[Any, BuildContext], object]  # rule -> instance
    gate: Callable[[Any, Any], Mechanism]  # (instance, rule) -> the plan's gate mechanism
    code: str = "RESOURCE_EXHAUSTED"  # a refusal's status code (a grpc.StatusCode name)
    trigger: str = "limit"  # the fallback condition a refusal meets
    shared: Callable[[Any], str] | None = None  # rule -> the pattern whose instance it shares

    def rule_of(self, method_rules: object) -> Hashable | None:
        """This mechanism's rule in a method's rules (None: the method has none)."""
        rule: Hashable | None = getattr(method_rules, self.name)
        return rule

    def make_gate(self, instance: object, rule: Any) -> Gate:
        return Gate(self.name, self.gate(instance, rule), self.code, self.trigger, instance)


def _build_rate_limit(rule: RateLimitRule, ctx: BuildContext) -> object:
    def build() -> Any:
        return build_limiter(
            rule.algorithm, limit=rule.limit, window=rule.window, burst=rule.burst,
            max_wait=rule.max_wait, warm_up=rule.warm_up, cold_factor=rule.cold_factor,
            clock=ctx.clock,
        )  # fmt: skip

    if rule.key:
        return KeyedLimiter(build, max_keys=rule.max_keys, allow=rule.allow)
    store = ctx.cluster_store
    if store is not None and rule.algorithm == "token_bucket":
        # An exact limit for the whole service in the shared store; the split share (today's
        # limiter) decides while the store is down. A cluster rule never split: its limit is whole.
        if rule.cluster_limit is not None:
            return store.limiter(ctx.pattern, rule.cluster_limit, rule.cluster_burst, build())
        if rule.cluster:
            return store.limiter(ctx.pattern, rule.limit, rule.burst, build())
    return build()


def _shared(rule: RateLimitRule | BulkheadRule) -> str:
    return rule.shared


def _rate_limit_gate(instance: Any, rule: RateLimitRule) -> Mechanism:
    return KeyedGate(instance, rule.key) if rule.key else limiter_gate(instance)


def _build_breaker(rule: BreakerRule, ctx: BuildContext) -> object:
    target, method, recorder = ctx.target, ctx.full_method, ctx.recorder

    def on_transition(old: Any, new: Any, reason: str) -> None:
        recorder.transition(target, method, old.name, new.name, reason)

    breaker = CircuitBreaker(
        window_type=rule.window_type, window_size=rule.window_size, minimum_calls=rule.minimum_calls,
        failure_rate_threshold=rule.failure_rate_threshold,
        slow_call_rate_threshold=rule.slow_call_rate_threshold,
        slow_call_duration=rule.slow_call_duration, consecutive_failures=rule.consecutive_failures,
        open_wait=rule.open_wait, max_open_wait=rule.max_open_wait,
        backoff_multiplier=rule.backoff_multiplier, half_open_probes=rule.half_open_probes,
        ramp_steps=rule.ramp_steps, ramp_step_duration=rule.ramp_step_duration,
        on_transition=on_transition, clock=ctx.clock, random=ctx.random,
    )  # fmt: skip
    if rule.force == "open":
        breaker.force_open()
    elif rule.force == "closed":
        breaker.force_closed()
    return breaker


def _build_throttle(rule: ThrottleRule, ctx: BuildContext) -> object:
    return AdaptiveThrottle(
        k=rule.k, window=rule.window, protected=rule.protected, clock=ctx.clock, random=ctx.random
    )


def _build_bulkhead(rule: BulkheadRule, ctx: BuildContext) -> object:
    return ConcurrencyLimiter(rule.max_concurrent)


def _itself(instance: Any, rule: Any) -> Mechanism:
    """For a mechanism that is its own gate."""
    gate: Mechanism = instance
    return gate


def _breaker_gate(breaker: CircuitBreaker, rule: BreakerRule) -> Mechanism:
    return BreakerGate(breaker)


def _throttle_gate(throttle: AdaptiveThrottle, rule: ThrottleRule) -> Mechanism:
    return ThrottleGate(throttle)


def _bulkhead_gate(bulkhead: ConcurrencyLimiter, rule: BulkheadRule) -> Mechanism:
    return LimiterGate(bulkhead)


# In the order they admit a call: the cheapest refusal first, and the breaker before what would
# count a call it refuses anyway.
SERVER: tuple[MechanismSpec, ...] = (
    MechanismSpec("brownout", "pattern", brownout.build, _itself),
    MechanismSpec("rate_limit", "pattern", _build_rate_limit, _rate_limit_gate, shared=_shared),
    MechanismSpec("bulkhead", "pattern", _build_bulkhead, _bulkhead_gate, shared=_shared),
)
CLIENT: tuple[MechanismSpec, ...] = (
    MechanismSpec("breaker", "target_method", _build_breaker, _breaker_gate, "UNAVAILABLE", "breaker"),
    MechanismSpec("throttle", "target", _build_throttle, _throttle_gate, "UNAVAILABLE"),
    MechanismSpec("bulkhead", "target_pattern", _build_bulkhead, _bulkhead_gate, shared=_shared),
)
