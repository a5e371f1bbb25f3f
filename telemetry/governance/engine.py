"""The governance engine: rules in, mechanisms out, swapped atomically at runtime.

:class:`Governance` holds the rules in force and the live mechanisms built from them (limiters,
breakers, throttles, bulkheads, retry budgets, the adaptive limiter, fallback caches). ``apply``
validates new rules, builds what changed and swaps one reference: calls already running finish on
the mechanisms they started with (so a swap never fails an in-flight call), unchanged rules keep
their mechanisms and state (an open breaker stays open), and an invalid rule set raises
:class:`~telemetry.governance.rules.RuleError` while the previous rules stay in force.

The server and client concerns (``telemetry.governance.concerns``) ask it for a per-method plan,
resolved once per method and rules generation.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from telemetry.governance._types import Clock, RandomSource, default_random, monotonic
from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.codel import QueueDelayGate
from telemetry.governance.deferral import ChannelFactory, DeferredCalls
from telemetry.governance.degrade import LastGoodCache, Priority, PriorityShedder
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.observe import DecisionRecorder, GovernanceCollector
from telemetry.governance.ratelimit import ConcurrencyLimiter as Bulkhead
from telemetry.governance.ratelimit import LeakyBucketLimiter, RateLimiter, build_limiter
from telemetry.governance.retry import RetryBudget, RetryPlan, RetryPolicy
from telemetry.governance.rules import (
    DEFAULT_FAILURE_CODES,
    MAX_JSON_BYTES,
    AdaptiveRule,
    BreakerRule,
    ClientMethodRules,
    ClientRules,
    FallbackRule,
    GovernanceRules,
    RateLimitRule,
    RetryRule,
    RuleError,
    ServerMethodRules,
    ServerRules,
    most_specific,
)
from telemetry.governance.throttle import AdaptiveThrottle
from telemetry.rpc.call import MethodInfo, RpcKind, split_method

RulesInput = GovernanceRules | Mapping[str, Any] | str | Path

_log = logging.getLogger("telemetry.governance")


@dataclass(frozen=True)
class CodeFallback:
    """Fallback values that only code can give: a default response, or a fast-path function."""

    default: Any = None
    fast_path: Callable[[Any], Any] | None = None


class FallbackPlan:
    """How one method answers instead of failing."""

    __slots__ = ("cache", "code", "mode", "on_breaker", "on_failure", "on_limit")

    def __init__(
        self, rule: FallbackRule, code: CodeFallback | None, cache: LastGoodCache[Any] | None
    ) -> None:
        self.mode = rule.mode
        self.on_breaker = "breaker" in rule.on
        self.on_limit = "limit" in rule.on
        self.on_failure = "failure" in rule.on
        self.code = code
        self.cache = cache

    def answer(self, request: Any) -> tuple[bool, Any]:
        """(True, response) when there is something to answer with."""
        if self.mode == "last_good" and self.cache is not None:
            cached = self.cache.get(request_key(request))
            if cached is not None:
                return True, cached
        code = self.code
        if code is None:
            return False, None
        if self.mode == "fast_path" and code.fast_path is not None:
            return True, code.fast_path(request)
        if code.default is not None:
            return True, code.default
        return False, None

    def remember(self, request: Any, response: Any) -> None:
        if self.cache is not None and response is not None:
            self.cache.put(request_key(request), response)


def request_key(request: Any) -> Any:
    serialize = getattr(request, "SerializeToString", None)
    if serialize is not None:
        return serialize(deterministic=True)
    return repr(request)


class ServerPlan:
    """What the server concern does for one method."""

    __slots__ = ("fallback", "limit_key", "limiter", "priority", "reserve", "write")

    def __init__(
        self,
        limiter: RateLimiter | KeyedLimiter | None,
        limit_key: str,
        priority: Priority,
        write: bool,
        fallback: FallbackPlan | None,
    ) -> None:
        self.limiter = limiter
        # A leaky bucket with a bounded wait admits "after a wait" (sync servers sleep it out).
        self.reserve = limiter.reserve if isinstance(limiter, LeakyBucketLimiter) else None
        self.limit_key = limit_key
        self.priority = priority
        self.write = write
        self.fallback = fallback


class ClientPlan:
    """What the client concern does for one method on one target."""

    __slots__ = (
        "breaker", "bulkhead", "deferral", "failure_codes", "fallback", "retry_plan", "throttle",
    )  # fmt: skip

    def __init__(self) -> None:
        self.breaker: CircuitBreaker | None = None
        self.failure_codes = _DEFAULT_FAILURE_CODES  # the breaker's, when there is one
        self.throttle: AdaptiveThrottle | None = None
        self.bulkhead: Bulkhead | None = None
        self.retry_plan: RetryPlan | None = None
        self.fallback: FallbackPlan | None = None
        self.deferral: DeferredCalls | None = None


@dataclass
class _Snapshot:
    """One generation of rules with the plans resolved from it (filled lazily, per method)."""

    rules: GovernanceRules
    generation: int
    adaptive: AdaptiveLimiter | None = None
    queue_gate: QueueDelayGate | None = None
    shedder: PriorityShedder | None = None
    server_plans: dict[str, ServerPlan] = field(default_factory=dict)
    client_plans: dict[tuple[str, str], ClientPlan] = field(default_factory=dict)
    retry_plans: dict[tuple[str, str], RetryPlan | None] = field(default_factory=dict)


class Governance:
    """Rules and mechanisms for one service. Thread-safe; ``apply`` may be called at any time."""

    def __init__(
        self,
        rules: RulesInput | None = None,
        *,
        clock: Clock = monotonic,
        random: RandomSource = default_random,
        cpu: Callable[[], float] | None = None,
        loop_lag: Callable[[], float] | None = None,
        recorder: DecisionRecorder | None = None,
    ) -> None:
        self.clock = clock
        self.random = random
        self._cpu = cpu
        self.loop_lag = loop_lag
        self.recorder = recorder if recorder is not None else DecisionRecorder()
        self._lock = threading.RLock()
        self._instances: dict[tuple[Any, ...], Any] = {}
        self._last_good = 0  # last-good caches built (one per method whose rule asks for one)
        self._fallbacks: dict[str, CodeFallback] = {}
        self._snapshot = _Snapshot(GovernanceRules(), 0)
        self._listeners: list[Callable[[GovernanceRules], None]] = []
        if rules is not None:
            self.apply(rules)

    # -- rules --------------------------------------------------------------------------------

    @property
    def rules(self) -> GovernanceRules:
        return self._snapshot.rules

    @property
    def generation(self) -> int:
        return self._snapshot.generation

    def apply(self, rules: RulesInput) -> GovernanceRules:
        """Validate ``rules`` and put them in force. On :class:`RuleError` nothing changes."""
        parsed = parse_rules(rules)
        with self._lock:
            snapshot = _Snapshot(parsed, self._snapshot.generation + 1)
            if parsed.adaptive.enabled:
                adaptive = parsed.adaptive
                snapshot.adaptive = self._instance(
                    ("adaptive", adaptive), lambda: self._new_adaptive(adaptive)
                )
                if adaptive.queue_target > 0:
                    snapshot.queue_gate = self._instance(
                        ("queue_gate", adaptive),
                        lambda: QueueDelayGate(
                            target=adaptive.queue_target,
                            interval=adaptive.queue_interval,
                            clock=self.clock,
                        ),
                    )
            if parsed.shedding.enabled:
                levels = parsed.shedding.levels
                snapshot.shedder = self._instance(
                    ("shedding", parsed.shedding), lambda: PriorityShedder(levels=levels)
                )
            self._prune(parsed)  # after building: a failure above leaves everything in place
            self._snapshot = snapshot
            listeners = list(self._listeners)
        _switch_interval.apply(parsed.adaptive.gil_switch_interval if parsed.adaptive.enabled else 0.0)
        self.recorder.rules_applied(snapshot.generation)
        for listener in listeners:
            try:
                listener(parsed)
            except Exception:  # the rules are in force: a listener's failure must not undo that
                _log.exception("governance on_apply listener failed")
        return parsed

    def on_apply(self, listener: Callable[[GovernanceRules], None]) -> None:
        """Call ``listener`` with each rule set put in force (the etcd status writer uses it)."""
        with self._lock:
            self._listeners.append(listener)

    def register_fallback(
        self, method: str, *, default: Any = None, fast_path: Callable[[Any], Any] | None = None
    ) -> None:
        """Give ``method`` (``pkg.Service/Method``) a default response and/or a fast-path function;
        rules decide when they are used. Takes effect for plans resolved from now on."""
        if default is None and fast_path is None:
            raise ValueError("register_fallback needs default= or fast_path=")
        with self._lock:
            self._fallbacks[method.strip("/")] = CodeFallback(default, fast_path)
            # Plans are cached per snapshot: a fresh one (same rules, same generation) re-resolves.
            old = self._snapshot
            self._snapshot = _Snapshot(
                old.rules, old.generation, old.adaptive, old.queue_gate, old.shedder
            )

    # -- plans, resolved once per method and generation ---------------------------------------

    def snapshot(self) -> _Snapshot:
        return self._snapshot

    def server_plan(self, snapshot: _Snapshot, info: MethodInfo) -> ServerPlan | None:
        plan = snapshot.server_plans.get(info.full_method)
        if plan is None:
            match = most_specific(snapshot.rules.server.methods, info.service, info.rpc_method)
            if match is None:
                plan = _NO_SERVER_PLAN
            else:
                pattern, rule = match
                plan = self._build_server_plan(pattern, rule, info)
            # A server with a generic handler serves any method a caller names: past the cap,
            # plans are resolved per call instead of kept (bounded memory, a little CPU).
            if len(snapshot.server_plans) < MAX_PLANS:
                snapshot.server_plans[info.full_method] = plan
        return None if plan is _NO_SERVER_PLAN else plan

    def client_plan(
        self, snapshot: _Snapshot, info: MethodInfo, target: str, channel: ChannelFactory | None = None
    ) -> ClientPlan | None:
        """``channel`` makes a channel to ``target`` for deferred calls (None: no deferral)."""
        key = (target, info.full_method)
        plan = snapshot.client_plans.get(key)
        if plan is None:
            match = most_specific(snapshot.rules.client.methods, info.service, info.rpc_method)
            plan = (
                _NO_CLIENT_PLAN
                if match is None
                else self._build_client_plan(match[0], match[1], info, target, channel)
            )
            if len(snapshot.client_plans) < MAX_PLANS:  # method names come from code; bounded anyway
                snapshot.client_plans[key] = plan
        return None if plan is _NO_CLIENT_PLAN else plan

    def _build_server_plan(self, pattern: str, rule: ServerMethodRules, info: MethodInfo) -> ServerPlan:
        limiter: RateLimiter | KeyedLimiter | None = None
        if rule.rate_limit is not None:
            limit = rule.rate_limit
            # The pattern is the limiter's scope: '*' is one limiter for the whole service.
            limiter = self._instance(("rate_limit", pattern, limit), lambda: self._new_limiter(limit))
        return ServerPlan(
            limiter,
            rule.rate_limit.key if rule.rate_limit is not None else "",
            Priority[rule.priority.upper()],
            rule.write,
            self._fallback_plan(pattern, rule.fallback, info),
        )

    def _build_client_plan(
        self,
        pattern: str,
        rule: ClientMethodRules,
        info: MethodInfo,
        target: str,
        channel: ChannelFactory | None,
    ) -> ClientPlan:
        plan = ClientPlan()
        if rule.breaker is not None:
            breaker_rule = rule.breaker  # one breaker per target and method
            plan.breaker = self._instance(
                ("breaker", target, info.full_method, breaker_rule),
                lambda: self._new_breaker(breaker_rule, target, info.full_method),
            )
            plan.failure_codes = _codes(breaker_rule.failure_codes)
        if rule.throttle is not None:
            throttle = rule.throttle
            plan.throttle = self._instance(
                ("throttle", target, throttle),
                lambda: AdaptiveThrottle(
                    k=throttle.k, window=throttle.window, protected=throttle.protected,
                    clock=self.clock, random=self.random,
                ),
            )  # fmt: skip
        if rule.bulkhead is not None:
            size = rule.bulkhead.max_concurrent  # per downstream, within the pattern's scope
            plan.bulkhead = self._instance(
                ("bulkhead", target, pattern, rule.bulkhead), lambda: Bulkhead(size)
            )
        plan.retry_plan = self._retry_plan(rule, info.full_method, target)
        plan.fallback = self._fallback_plan(f"{target}|{pattern}", rule.fallback, info)
        if rule.defer and channel is not None and info.kind is RpcKind.UNARY:
            breaker, codes, size = plan.breaker, plan.failure_codes, rule.defer_max_items
            plan.deferral = self._instance(
                ("deferral", target, info.full_method, rule),
                lambda: DeferredCalls(info.full_method, channel, breaker, codes, max_items=size),
            )
        return plan

    def retry_plan(self, full_method: str, target: str) -> RetryPlan | None:
        """The retry plan of ``full_method`` (``/pkg.Service/Method``) toward ``target`` under
        the rules in force, for a channel that retries itself (a balanced channel: ``target`` is
        the service name, one budget for all its instances). None: governance off, no retry rule,
        or the method is not idempotent. Resolved once per method, target and rules generation."""
        snapshot = self._snapshot
        if not snapshot.rules.enabled:
            return None
        key = (target, full_method)
        plans = snapshot.retry_plans
        if key in plans:
            return plans[key]
        service, method = split_method(full_method)
        match = most_specific(snapshot.rules.client.methods, service, f"{service}/{method}")
        plan = None if match is None else self._retry_plan(match[1], full_method, target)
        if len(plans) < MAX_PLANS:  # method names come from code, but stay bounded anyway
            plans[key] = plan
        return plan

    def _retry_plan(self, rule: ClientMethodRules, full_method: str, target: str) -> RetryPlan | None:
        retry = rule.retry
        if retry is None or not rule.idempotent:
            return None
        budget = self._instance(
            ("retry_budget", target, retry),
            lambda: RetryBudget(
                ratio=retry.budget_ratio, min_per_second=retry.budget_min_per_second, clock=self.clock
            ),
        )
        recorder = self.recorder

        def on_decision(outcome: str, reason: str) -> None:
            recorder.decision_for(full_method, "retry", outcome, reason)

        return RetryPlan(_retry_policy(retry), _codes(retry.codes), budget, on_decision, self.random)

    def _fallback_plan(
        self, scope: str, rule: FallbackRule | None, info: MethodInfo
    ) -> FallbackPlan | None:
        if rule is None:
            return None
        cache = None
        key = ("last_good", scope, info.full_method, rule)
        # One cache per method: past MAX_PLANS methods a new one gets none (its calls fall back
        # to the default or the code), so callers naming methods cannot grow memory.
        if rule.mode == "last_good" and (key in self._instances or self._last_good < MAX_PLANS):
            cache = self._instance(key, lambda: self._new_last_good(rule))
        return FallbackPlan(rule, self._fallbacks.get(info.rpc_method), cache)

    def _new_last_good(self, rule: FallbackRule) -> LastGoodCache[Any]:
        self._last_good += 1
        return LastGoodCache(max_entries=rule.cache_size, ttl=rule.cache_ttl, clock=self.clock)

    # -- mechanism instances, kept across rule changes while their rule is unchanged ---------

    def _instance(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        """The mechanism for ``key`` (whose last part is its rule), built on first use."""
        instance = self._instances.get(key)
        if instance is None:
            with self._lock:  # re-entrant: apply() builds while holding it
                instance = self._instances.get(key)
                if instance is None:
                    instance = self._instances[key] = build()
        return instance

    def _prune(self, rules: GovernanceRules) -> None:
        """Forget mechanisms whose rule is gone (in-flight calls keep their own references)."""
        live = set(_rule_objects(rules))
        # Limiters and bulkheads are scoped by their pattern: the same rule elsewhere is not theirs.
        scoped = {(p, r.rate_limit) for p, r in rules.server.methods.items()} | {
            (p, r.bulkhead) for p, r in rules.client.methods.items()
        }
        for key in [
            k
            for k in self._instances
            if k[-1] not in live
            or (k[0] in ("rate_limit", "bulkhead") and (k[-2], k[-1]) not in scoped)
            or (k[0] == "breaker" and _breaker_rule(rules, k[2]) != k[-1])
        ]:
            gone = self._instances.pop(key)
            if key[0] == "last_good":
                self._last_good -= 1
            if isinstance(gone, DeferredCalls):  # send what it holds before letting it go
                threading.Thread(target=gone.close, daemon=True, name="telemetry-deferral-close").start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop background work (deferred-call senders), sending what they hold within ``timeout``."""
        with self._lock:
            deferrals = [i for i in self._instances.values() if isinstance(i, DeferredCalls)]
        for deferral in deferrals:
            deferral.close(timeout / max(1, len(deferrals)))

    def _new_limiter(self, rule: RateLimitRule) -> RateLimiter | KeyedLimiter:
        def build() -> RateLimiter:
            return build_limiter(
                rule.algorithm, limit=rule.limit, window=rule.window, burst=rule.burst,
                max_wait=rule.max_wait, warm_up=rule.warm_up, cold_factor=rule.cold_factor,
                clock=self.clock,
            )  # fmt: skip

        if rule.key:
            return KeyedLimiter(build, max_keys=rule.max_keys, allow=rule.allow)
        return build()

    def _new_breaker(self, rule: BreakerRule, target: str, method: str) -> CircuitBreaker:
        def on_transition(old: Any, new: Any, reason: str) -> None:
            self.recorder.transition(target, method, old.name, new.name, reason)

        breaker = CircuitBreaker(
            window_type=rule.window_type, window_size=rule.window_size, minimum_calls=rule.minimum_calls,
            failure_rate_threshold=rule.failure_rate_threshold,
            slow_call_rate_threshold=rule.slow_call_rate_threshold,
            slow_call_duration=rule.slow_call_duration, consecutive_failures=rule.consecutive_failures,
            open_wait=rule.open_wait, max_open_wait=rule.max_open_wait,
            backoff_multiplier=rule.backoff_multiplier, half_open_probes=rule.half_open_probes,
            ramp_steps=rule.ramp_steps, ramp_step_duration=rule.ramp_step_duration,
            on_transition=on_transition, clock=self.clock, random=self.random,
        )  # fmt: skip
        if rule.force == "open":
            breaker.force_open()
        elif rule.force == "closed":
            breaker.force_closed()
        return breaker

    def _new_adaptive(self, rule: AdaptiveRule) -> AdaptiveLimiter:
        return AdaptiveLimiter(
            pressure=self.cpu, cpu_threshold=rule.cpu_threshold, loop_lag=self._loop_lag,
            loop_lag_threshold=rule.loop_lag_threshold, cool_off=rule.cool_off,
            min_limit=rule.min_limit, max_limit=rule.max_limit, initial_limit=rule.initial_limit,
            tolerance=rule.tolerance, cpu_max=rule.cpu_max, clock=self.clock,
        )  # fmt: skip

    # -- live signals -------------------------------------------------------------------------

    def cpu(self) -> float:
        """CPU pressure of this process as a fraction of one core (the shared sampler by default)."""
        if self._cpu is None:
            from telemetry.governance.pressure import shared_cpu_sampler

            self._cpu = shared_cpu_sampler()
        return self._cpu()

    def _loop_lag(self) -> float:
        return self.loop_lag() if self.loop_lag is not None else 0.0

    def watch_event_loop(self) -> None:
        """Measure the running event loop's lag for the adaptive limiter (aio servers call this
        from their first call; a loop running CPU-bound handlers shows its queue only as lag)."""
        with self._lock:
            if self.loop_lag is not None:
                return
            from telemetry.governance.pressure import LoopLagMonitor

            self.loop_lag = LoopLagMonitor().start()

    def breakers(self) -> Iterator[tuple[str, str, CircuitBreaker]]:
        """(target, method, breaker) for every live breaker."""
        with self._lock:
            found = [(k[1], k[2], i) for k, i in self._instances.items() if k[0] == "breaker"]
        yield from found

    def collector(self) -> GovernanceCollector:
        return GovernanceCollector(self.recorder, self._live_gauges)

    def _live_gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        yield "governance_rules_generation", {}, float(self.generation)
        for target, method, breaker in self.breakers():
            labels = {"target": target, "method": method}
            yield "governance_breaker_state", labels, float(breaker.state)
            yield "governance_breaker_admitted_share", labels, breaker.admitted_share
        adaptive = self._snapshot.adaptive
        if adaptive is not None:
            snap = adaptive.snapshot()
            yield "governance_adaptive_limit", {}, float(snap.limit)
            yield "governance_adaptive_in_flight", {}, float(snap.in_flight)
            yield "governance_pressure", {"signal": "cpu"}, snap.cpu
            yield "governance_pressure", {"signal": "loop_lag"}, snap.loop_lag
            yield "governance_shedding", {"reason": snap.reason or "none"}, 1.0 if snap.shedding else 0.0
        gate = self._snapshot.queue_gate
        if gate is not None:
            queue = gate.snapshot()
            yield "governance_queue_overloaded", {}, 1.0 if queue.overloaded else 0.0
            yield "governance_queue_min_delay_seconds", {}, queue.min_delay


class _SwitchInterval:
    """AdaptiveRule.gil_switch_interval, process-wide: set while wanted, and on release restore
    what was there before governance set it (an application's own setting is left alone)."""

    def __init__(self) -> None:
        self._saved: float | None = None
        self._lock = threading.Lock()

    def apply(self, seconds: float) -> None:
        with self._lock:
            if seconds > 0:
                if self._saved is None:
                    self._saved = sys.getswitchinterval()
                sys.setswitchinterval(seconds)
            elif self._saved is not None:
                sys.setswitchinterval(self._saved)
                self._saved = None


_switch_interval = _SwitchInterval()


def parse_rules(rules: RulesInput) -> GovernanceRules:
    """Rules from an object (re-validated: code can build invalid ones), a mapping, JSON text or
    a JSON/YAML file path. Raises :class:`RuleError` and nothing else, whatever the input."""
    if isinstance(rules, GovernanceRules):
        try:
            data = rules.to_dict()
        except Exception as exc:  # an object built in code can hold anything (a cycle ...)
            raise RuleError("rules", f"cannot be read ({type(exc).__name__}: {str(exc)[:300]})") from exc
        return GovernanceRules.from_dict(data)
    if isinstance(rules, Path):
        return _load_file(rules)
    if isinstance(rules, str):
        return GovernanceRules.from_json(rules)
    return GovernanceRules.from_dict(rules)


def _load_file(path: Path) -> GovernanceRules:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleError(str(path), f"cannot read rules file: {exc}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise RuleError(str(path), f"too large: {len(raw)} bytes, at most {MAX_JSON_BYTES}")
    if path.suffix in (".yaml", ".yml"):
        import yaml  # a declared dependency (services read their YAML config with it too)

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise RuleError(str(path), f"not valid YAML: {exc}") from None
        except Exception as exc:  # what PyYAML lets through: RecursionError when deeply nested,
            # ValueError for an impossible date ...: a refusal all the same
            raise RuleError(str(path), f"not valid YAML ({type(exc).__name__}: {exc})") from None
        return GovernanceRules.from_dict(data or {})
    return GovernanceRules.from_json(raw)


def _codes(names: tuple[str, ...]) -> frozenset[grpc.StatusCode]:
    return frozenset(grpc.StatusCode[name] for name in names)


def _retry_policy(rule: RetryRule) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=rule.max_attempts, initial_backoff=rule.initial_backoff,
        max_backoff=rule.max_backoff, multiplier=rule.multiplier, jitter=rule.jitter,
    )  # fmt: skip


def _rule_objects(value: Any) -> Iterator[Any]:
    """Every hashable rule object inside ``value`` (the containers holding mappings are not)."""
    if hasattr(value, "__dataclass_fields__"):
        if not isinstance(value, GovernanceRules | ServerRules | ClientRules):
            yield value
        for name in value.__dataclass_fields__:
            yield from _rule_objects(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _rule_objects(item)


_DEFAULT_FAILURE_CODES = _codes(DEFAULT_FAILURE_CODES)
MAX_PLANS = 10_000
"""Plans kept per rules generation and side (and last-good caches built): past it, resolved per call."""
_NO_SERVER_PLAN = ServerPlan(None, "", Priority.NORMAL, False, None)
_NO_CLIENT_PLAN = ClientPlan()


def _breaker_rule(rules: GovernanceRules, full_method: str) -> Any:
    """The breaker rule that now governs ``/pkg.Service/Method`` (None: no breaker): a breaker
    whose method a more specific pattern took over is gone, though its rule lives on elsewhere
    (one breaker per target and method, so its metrics never show two states)."""
    rpc_method = full_method.lstrip("/")
    match = most_specific(rules.client.methods, rpc_method.partition("/")[0], rpc_method)
    return match[1].breaker if match is not None else None
