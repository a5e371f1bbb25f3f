"""The governance engine: rules in, mechanisms out, swapped atomically at runtime.

:class:`Governance` holds the rules in force and the live mechanisms built from them (limiters,
breakers, throttles, bulkheads, retry budgets, the adaptive limiter, fallback caches). ``apply``
validates new rules, builds what changed and swaps one reference: calls already running finish on
the mechanisms they started with (so a swap never fails an in-flight call), unchanged rules keep
their mechanisms and state (an open breaker stays open), and an invalid rule set raises
:class:`~telemetry.governance.rules.RuleError` while the previous rules stay in force.

The server and client concerns (``telemetry.rpc.server_governance``, ``client_governance``) ask
it for a method's plan -- the :class:`~telemetry.governance.gate.Gate`\\ s a call goes through,
in order, and what answers instead of failing -- resolved once per method and rules generation.
Which per-method mechanisms exist is ``telemetry.governance.registry``'s to say.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from telemetry.governance._types import Clock, RandomSource, default_random, monotonic
from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.cluster_limit import ClusterStore
from telemetry.governance.codel import QueueDelayGate
from telemetry.governance.degrade import LastGoodCache, Priority, PriorityShedder
from telemetry.governance.fallback import CodeFallback, FallbackPlan
from telemetry.governance.gate import BuildContext, Gate
from telemetry.governance.gates import AdaptiveGate, QueueGate, ShedGate
from telemetry.governance.instances import InstanceKey, InstanceTable
from telemetry.governance.loading import RulesInput, parse_rules
from telemetry.governance.observe import DecisionRecorder, GovernanceCollector
from telemetry.governance.plans import ClientPlan, Deferral, DeferralFactory, PlannedMethod, ServerPlan
from telemetry.governance.registry import CLIENT, SERVER, MechanismSpec
from telemetry.governance.retry import RetryBudget, RetryPlan, RetryPolicy
from telemetry.governance.rules import (
    DEFAULT_FAILURE_CODES,
    AdaptiveRule,
    ClientMethodRules,
    FallbackRule,
    GovernanceRules,
    RetryRule,
    most_specific,
)
from telemetry.governance.switch_interval import switch_interval
from telemetry.method_names import split_method

__all__ = ["ClientPlan", "Deferral", "DeferralFactory", "Governance", "ServerPlan"]

_log = logging.getLogger("telemetry.governance")


@dataclass
class _Snapshot:
    """One generation of rules with the plans resolved from it (filled lazily, per method)."""

    rules: GovernanceRules
    generation: int
    adaptive: AdaptiveLimiter | None = None
    queue_gate: QueueDelayGate | None = None
    shedder: PriorityShedder | None = None
    service_plan: ServerPlan = field(
        default_factory=lambda: ServerPlan((), None, Priority.NORMAL, False)
    )
    server_plans: dict[str, ServerPlan | None] = field(default_factory=dict)
    client_plans: dict[tuple[str, str], ClientPlan | None] = field(default_factory=dict)
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
        process_settings: bool = True,
        cluster_store: ClusterStore | None = None,
    ) -> None:
        """``process_settings`` False: leave process-wide settings (the interpreter's switch
        interval, ``AdaptiveRule.gil_switch_interval``) alone until :meth:`take_process_settings`
        (a handle builds its governance without side effects, and starts it later).
        ``cluster_store``: token-bucket cluster limits count there, exactly (None: split)."""
        self.clock = clock
        self.cluster_store = cluster_store
        self.random = random
        self._cpu = cpu
        self.loop_lag = loop_lag
        self.recorder = recorder if recorder is not None else DecisionRecorder()
        self._lock = threading.RLock()
        self._instances = InstanceTable(self._lock)
        self._fallbacks: dict[str, CodeFallback] = {}
        self._snapshot = _Snapshot(GovernanceRules(), 0)
        self._listeners: list[Callable[[GovernanceRules], None]] = []
        self._process_settings = process_settings
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
            snapshot = self._service_wide(_Snapshot(parsed, self._snapshot.generation + 1))
            self._prune(parsed, snapshot.generation)  # after building: a failure leaves all in place
            self._snapshot = snapshot
            listeners = list(self._listeners)
        if self._process_settings:
            _set_switch_interval(parsed)
        self.recorder.rules_applied(snapshot.generation)
        for listener in listeners:
            try:
                listener(parsed)
            except Exception:  # the rules are in force: a listener's failure must not undo that
                _log.exception("governance on_apply listener failed")
        return parsed

    def _service_wide(self, snapshot: _Snapshot) -> _Snapshot:
        """Build the snapshot's service-wide mechanisms and the plan of methods without rules."""
        rules = snapshot.rules
        if rules.adaptive.enabled:
            adaptive = rules.adaptive
            snapshot.adaptive = self._service_instance(
                "adaptive", adaptive, lambda: self._new_adaptive(adaptive)
            )
            if adaptive.queue_target > 0:
                snapshot.queue_gate = self._service_instance(
                    "queue_gate", adaptive,
                    lambda: QueueDelayGate(
                        target=adaptive.queue_target, interval=adaptive.queue_interval, clock=self.clock
                    ),
                )  # fmt: skip
        if rules.shedding.enabled:
            levels = rules.shedding.levels
            snapshot.shedder = self._service_instance(
                "shedding", rules.shedding, lambda: PriorityShedder(levels=levels)
            )
        snapshot.service_plan = ServerPlan(
            self._server_gates(snapshot, Priority.NORMAL, False, ()), None, Priority.NORMAL, False
        )
        return snapshot

    def _service_instance(self, kind: str, rule: Hashable, build: Callable[[], Any]) -> Any:
        return self._instances.get(InstanceKey.of(kind, "service", "any", rule), build)

    def take_process_settings(self) -> None:
        """Apply, from now on, the rules' process-wide settings (see ``process_settings``)."""
        with self._lock:
            self._process_settings = True
            _set_switch_interval(self._snapshot.rules)

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
                old.rules, old.generation, old.adaptive, old.queue_gate, old.shedder, old.service_plan
            )

    # -- plans, resolved once per method and generation ---------------------------------------

    def snapshot(self) -> _Snapshot:
        return self._snapshot

    def server_plan(self, snapshot: _Snapshot, info: PlannedMethod) -> ServerPlan | None:
        """The plan of a method with server rules (None: no rule names it; the snapshot's
        ``service_plan`` then has the service-wide gates)."""
        plans = snapshot.server_plans
        if info.full_method in plans:
            return plans[info.full_method]
        match = most_specific(snapshot.rules.server.methods, info.service, info.rpc_method)
        plan = None
        if match is not None:
            pattern, rule = match
            priority = Priority[rule.priority.upper()]
            gates = self._method_gates(SERVER, "server", rule, pattern, "", info, snapshot.generation)
            plan = ServerPlan(
                self._server_gates(snapshot, priority, rule.write, gates),
                self._fallback_plan("server", "", pattern, rule.fallback, info, snapshot.generation),
                priority,
                rule.write,
            )
        # A server with a generic handler serves any method a caller names: past the cap,
        # plans are resolved per call instead of kept (bounded memory, a little CPU).
        if len(plans) < MAX_PLANS:
            plans[info.full_method] = plan
        return plan

    def _server_gates(
        self, snapshot: _Snapshot, priority: Priority, write: bool, method_gates: tuple[Gate, ...]
    ) -> tuple[Gate, ...]:
        """Shedding, the queue gate, the method's own gates, then the adaptive limiter: the
        cheapest refusals first, and the limiter last so it counts only calls that will run."""
        gates: list[Gate] = []
        if snapshot.shedder is not None:
            shed = ShedGate(snapshot.shedder, priority, write, self.cpu)
            gates.append(Gate("shedding", shed, instance=snapshot.shedder))
        if snapshot.queue_gate is not None:
            gates.append(Gate("adaptive", QueueGate(snapshot.queue_gate), instance=snapshot.queue_gate))
        gates.extend(method_gates)
        if snapshot.adaptive is not None:
            gates.append(Gate("adaptive", AdaptiveGate(snapshot.adaptive), instance=snapshot.adaptive))
        return tuple(gates)

    def client_plan(
        self,
        snapshot: _Snapshot,
        info: PlannedMethod,
        target: str,
        defer: DeferralFactory | None = None,
    ) -> ClientPlan | None:
        """``defer`` builds a deferral for calls to ``target`` (None: calls are never deferred)."""
        key = (target, info.full_method)
        plans = snapshot.client_plans
        if key in plans:
            return plans[key]
        match = most_specific(snapshot.rules.client.methods, info.service, info.rpc_method)
        generation = snapshot.generation
        plan = (
            None
            if match is None
            else self._build_client_plan(match[0], match[1], info, target, defer, generation)
        )
        if len(plans) < MAX_PLANS:  # method names come from code; bounded anyway
            plans[key] = plan
        return plan

    def _build_client_plan(
        self,
        pattern: str,
        rule: ClientMethodRules,
        info: PlannedMethod,
        target: str,
        defer: DeferralFactory | None,
        generation: int,
    ) -> ClientPlan:
        gates = self._method_gates(CLIENT, "client", rule, pattern, target, info, generation)
        breaker_rule = rule.breaker
        codes = _codes(breaker_rule.failure_codes if breaker_rule is not None else DEFAULT_FAILURE_CODES)
        deferral = None
        unary = not (info.streams_requests or info.streams_responses)
        if rule.defer and defer is not None and unary:
            breaker = next((g.instance for g in gates if g.name == "breaker"), None)
            size = rule.defer_max_items
            deferral = self._instances.get(
                InstanceKey.of("deferral", "client", "target_method", rule, target=target,
                               method=info.full_method),
                lambda: defer(info.full_method, breaker, codes, size),  # type: ignore[arg-type]
                generation,
            )  # fmt: skip
        return ClientPlan(
            gates,
            self._fallback_plan("client", target, pattern, rule.fallback, info, generation),
            codes,
            self._retry_plan(rule, info.full_method, target, generation),
            deferral,
        )

    def _method_gates(
        self,
        specs: tuple[MechanismSpec, ...],
        side: str,
        rules: object,
        pattern: str,
        target: str,
        info: PlannedMethod,
        generation: int,
    ) -> tuple[Gate, ...]:
        """The gates of the registry's mechanisms that ``rules`` (one method's) has a rule for."""
        gates = []
        for spec in specs:
            rule = spec.rule_of(rules)
            if rule is None:
                continue
            # A rule may share a broader pattern's instance (one limiter for several patterns).
            shared = spec.shared(rule) if spec.shared is not None else ""
            context = BuildContext(self.clock, self.random, self.recorder, target, info.full_method,
                                   shared or pattern, self.cluster_store)  # fmt: skip
            key = InstanceKey.of(
                spec.name,
                side,
                spec.scope,
                rule,
                target=target,
                pattern=shared or pattern,
                method=info.full_method,
            )
            build = functools.partial(spec.build, rule, context)
            instance = self._instances.get(key, build, generation)
            gates.append(spec.make_gate(instance, rule))
        return tuple(gates)

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
        plan = (
            None
            if match is None
            else self._retry_plan(match[1], full_method, target, snapshot.generation)
        )
        if len(plans) < MAX_PLANS:  # method names come from code, but stay bounded anyway
            plans[key] = plan
        return plan

    def _retry_plan(
        self, rule: ClientMethodRules, full_method: str, target: str, generation: int
    ) -> RetryPlan | None:
        retry = rule.retry
        if retry is None or not rule.idempotent:
            return None
        budget = self._instances.get(
            InstanceKey.of("retry_budget", "client", "target", retry, target=target),
            lambda: RetryBudget(
                ratio=retry.budget_ratio, min_per_second=retry.budget_min_per_second, clock=self.clock
            ),
            generation,
        )
        recorder = self.recorder

        def on_decision(outcome: str, reason: str) -> None:
            recorder.decision_for(full_method, "retry", outcome, reason)

        return RetryPlan(_retry_policy(retry), _codes(retry.codes), budget, on_decision, self.random)

    def _fallback_plan(
        self,
        side: str,
        target: str,
        pattern: str,
        rule: FallbackRule | None,
        info: PlannedMethod,
        generation: int,
    ) -> FallbackPlan | None:
        if rule is None:
            return None
        cache = None
        key = InstanceKey("last_good", side, "target_pattern", rule, target, pattern, info.full_method)
        # One cache per method: past MAX_PLANS methods a new one gets none (its calls fall back
        # to the default or the code), so callers naming methods cannot grow memory.
        built = self._instances.count("last_good")
        if rule.mode == "last_good" and (key in self._instances or built < MAX_PLANS):
            cache = self._instances.get(key, lambda: self._new_last_good(rule), generation)
        return FallbackPlan(rule, self._fallbacks.get(info.rpc_method), cache)

    def _new_last_good(self, rule: FallbackRule) -> LastGoodCache[Any]:
        return LastGoodCache(max_entries=rule.cache_size, ttl=rule.cache_ttl, clock=self.clock)

    # -- mechanism instances, kept across rule changes while their rule is unchanged ---------

    def _prune(self, rules: GovernanceRules, generation: int) -> None:
        """Forget mechanisms whose rule is gone (in-flight calls keep their own references)."""
        for key, gone in self._instances.prune(rules, generation):
            if key.kind == "deferral":  # send what it holds before letting it go
                close = gone.close  # type: ignore[attr-defined]
                threading.Thread(target=close, daemon=True, name="telemetry-deferral-close").start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop background work (deferred-call senders), sending what they hold within ``timeout``."""
        deferrals = [deferral for _key, deferral in self._instances.of_kind("deferral")]
        for deferral in deferrals:
            deferral.close(timeout / max(1, len(deferrals)))

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
        yield from ((k.target, k.method, b) for k, b in self._instances.of_kind("breaker"))

    def rate_limiters(self) -> list[tuple[str, object]]:
        """(pattern, limiter) of every live rate-limit instance (cluster limits' metrics)."""
        return [(key.pattern, limiter) for key, limiter in self._instances.of_kind("rate_limit")]

    def collector(self) -> GovernanceCollector:
        return GovernanceCollector(self.recorder, self._live_gauges)

    def _live_gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        yield "governance_rules_generation", {}, float(self.generation)
        for target, method, breaker in self.breakers():
            labels = {"target": target, "method": method}
            yield "governance_breaker_state", labels, float(breaker.state)
            yield "governance_breaker_admitted_share", labels, breaker.admitted_share
        for key, deferral in self._instances.of_kind("deferral"):
            labels = {"target": key.target, "method": key.method}
            yield "governance_deferred_pending", labels, float(deferral.pending)
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


def _set_switch_interval(rules: GovernanceRules) -> None:
    switch_interval.apply(rules.adaptive.gil_switch_interval if rules.adaptive.enabled else 0.0)


@functools.cache
def _codes(names: tuple[str, ...]) -> frozenset[Any]:
    """grpc's status codes named ``names``. grpc is imported here, not at module level: the
    engine resolves codes only when it builds a client plan, so the rest imports without it."""
    import grpc

    return frozenset(grpc.StatusCode[name] for name in names)


def _retry_policy(rule: RetryRule) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=rule.max_attempts, initial_backoff=rule.initial_backoff,
        max_backoff=rule.max_backoff, multiplier=rule.multiplier, jitter=rule.jitter,
    )  # fmt: skip


MAX_PLANS = 10_000
"""Plans kept per rules generation and side (and last-good caches built): past it, resolved per call."""
