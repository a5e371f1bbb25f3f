"""One channel for a service name: calls are balanced over its live instances.

``ServiceChannel`` (sync, :mod:`telemetry.discovery.service_channel`) and ``AioServiceChannel``
(grpc.aio, :mod:`telemetry.discovery.aio_service_channel`) look like ordinary channels, so generated
stubs work unchanged::

    channel = ServiceChannel(service="inventory", source=watch_cache, make_channel=tel.channel,
                             balancer=build_balancer("p2c"))
    inventory = InventoryStub(channel)

This module holds what both share on top of the grpc-free
:class:`~telemetry.discovery.instance_pool.InstancePool`. Per call:

1. *Membership.* ``source.instances(service)`` is read; when it is not the very object seen last time
   the channel reconciles: instances that appeared get an endpoint (a breaker now, a channel from
   ``make_channel`` on first use), instances that left are retired and their channel is closed once
   the calls already running on it have finished. A source that returns the same tuple until
   membership changes (the etcd watch cache does) makes this check one identity test.
2. *Routing.* When the current OpenTelemetry baggage has ``route_baggage_key`` (default ``group``),
   the call goes to instances of that group (a canary, say); if there are none it falls back to the
   default pool (see :func:`telemetry.discovery.balancer.route`).
3. *Ejection.* Each instance has its own :class:`~telemetry.governance.breaker.CircuitBreaker`; an
   instance whose breaker does not admit the call is skipped (outlier ejection, as in Envoy and grpc's
   outlier detection). It comes back through the breaker's own half-open probes and recovery ramp.
   Only ``failure_codes`` count against an instance (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL,
   UNKNOWN by default); other statuses, RESOURCE_EXHAUSTED included, are the server answering, and
   a failure that relays a refusal from further down, or the instance's rate limit answering
   (``telemetry.rpc.relay``), says nothing about the instance either.
4. *Balancing.* The balancer picks among the admitted instances and is told when each unary call
   starts and ends (latency, and whether the instance failed it).
5. *Retries* (unary-unary only), the toolkit's one retry layer for such a call: the instance
   channels (``tel.channel(address, retries=False)``) never retry underneath. The plan is
   governance's retry rule for the method when it has one (its codes, attempts, backoff and budget:
   ``retry_plans``), else failover only (:data:`RETRY_CODES`, ``max_attempts``, this channel's
   :class:`~telemetry.governance.retry.RetryBudget`); a
   :class:`~telemetry.governance.retry.RetryCall` walks it. An instance not tried yet takes the
   next attempt at once; one already tried only after the plan's backoff or the server's pushback
   (gRFC A6, ``grpc-retry-pushback-ms``; ``-1`` forbids retrying). Every attempt gets what is left
   of the caller's timeout and of the chain's deadline, and a failure relaying a refusal from
   further down is not retried (another instance sits in front of the same refusal). ``future()``
   does not retry: it delegates to one picked instance and reports the outcome from a done-callback.

Streaming calls pick one instance and are not retried (a request stream cannot be replayed). Their
outcome feeds the instance's breaker, but neither the balancer nor the breaker's slow-call rate: a
stream's duration is not a latency.

No instance to call (none registered, all ejected): the call fails with UNAVAILABLE, naming the
service, without network I/O. ``make_channel`` is ``tel.channel`` / ``tel.aio_channel`` in
production, so every attempt is traced, counted and governed like any other outgoing call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

import grpc

from telemetry.discovery.balancer import Balancer
from telemetry.discovery.instance import Instance
from telemetry.discovery.instance_pool import (
    Endpoint,
    InstancePool,
    InstanceSource,
    MethodKey,
    PanicPick,
    Picked,
    PoolView,
    Verdict,
)
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.retry import RetryBudget, RetryCall, RetryPlan, RetryPolicy
from telemetry.governance.rules import DEFAULT_FAILURE_CODES
from telemetry.rpc.relay import note_refusal, refusal, relayed
from telemetry.rpc.retrying import new_retry_call, next_delay
from telemetry.rpc.status import rpc_error_code

__all__ = [
    "FAILURE_CODES",
    "RETRY_CODES",
    "Attempts",
    "Balanced",
    "BalancedCore",
    "Multicallable",
    "channel_method",
    "default_retry_budget",
    "trailing_of",
]

RETRY_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
"""Codes retried on another instance."""

FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    grpc.StatusCode[name] for name in DEFAULT_FAILURE_CODES if name != "RESOURCE_EXHAUSTED"
)
"""What ejects an instance by default: the transport or the server failing. Not RESOURCE_EXHAUSTED:
that is the server answering "over a limit" (often a per-user one), which says nothing about the
instance's health; overload is the balancer's to weigh and the retry's to route around."""

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_SUCCESS, _FAILURE, _IGNORED = Verdict.SUCCESS, Verdict.FAILURE, Verdict.IGNORED

C = TypeVar("C")


def default_retry_budget(clock: Clock = monotonic) -> RetryBudget:
    """The governance default: retries up to 10% of calls plus 1 per second (over 10 s)."""
    return RetryBudget(ratio=0.1, min_per_second=1.0, clock=clock)


class BalancedCore(InstancePool[C]):
    """The pool plus what grpc calls add: statuses judged into verdicts, retry plans, local
    refusals. Everything but the calls themselves; shared by the sync and aio channels."""

    def __init__(
        self,
        *,
        service: str,
        source: InstanceSource,
        make_channel: Callable[[str], C],
        close_channel: Callable[[C], None],
        balancer: Balancer,
        route_baggage_key: str | None,
        retry_budget: RetryBudget | None,
        max_attempts: int,
        breaker_factory: Callable[[], CircuitBreaker] | None,
        failure_codes: Collection[grpc.StatusCode],
        retry_codes: Collection[grpc.StatusCode],
        clock: Clock,
        panic: bool = True,
        retry_plans: Callable[[str], RetryPlan | None] | None = None,
    ) -> None:
        super().__init__(
            service=service,
            source=source,
            make_channel=make_channel,
            close_channel=close_channel,
            balancer=balancer,
            route_baggage_key=route_baggage_key,
            breaker_factory=breaker_factory,
            clock=clock,
            panic=panic,
        )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self.budget = retry_budget if retry_budget is not None else default_retry_budget(clock)
        self.retry_plans = retry_plans
        # Failover without governance: another instance at once, no backoff.
        self.failover_plan = RetryPlan(
            RetryPolicy(max_attempts=max_attempts, initial_backoff=0.0, max_backoff=0.0, jitter=0.0),
            frozenset(retry_codes),
            self.budget,
        )
        self.failure_codes = frozenset(failure_codes)

    def first_attempt(self, method: str) -> RetryPlan:
        """A unary call to ``method`` starts: its retry plan, the first attempt counted in the
        plan's budget (first attempts earn the retries)."""
        plan = self.plan_for(method)
        if plan.budget is not None:
            plan.budget.on_call()
        return plan

    def plan_for(self, method: str) -> RetryPlan:
        """The one retry plan of a call to ``method``: governance's for this service (the rule's
        policy, codes and budget) when it has one, else failover only (another instance at once,
        on :data:`RETRY_CODES`, within this channel's budget)."""
        if self.retry_plans is not None:
            plan = self.retry_plans(method)
            if plan is not None:
                return plan
        return self.failover_plan

    def refuse_locally(self, view: PoolView[C]) -> str:
        """Refuse a call locally (no instance to call): note the refusal on the call being served,
        whose failure then relays it (telemetry.rpc.relay); returns why, for the error."""
        note_refusal("discovery")
        if not view.instances:
            return f"no instances of service {self.service!r}"
        return f"no available instance of service {self.service!r}: all are ejected by their breakers"

    def finish(
        self,
        instance: Instance,
        endpoint: Endpoint[Any] | PanicPick[Any],
        code: Any,
        latency: float,
        *,
        streamed: bool = False,
        trailing: Any = (),
    ) -> None:
        """Report one attempt's outcome (``code`` None: no status, e.g. a local exception;
        ``trailing``: a failed attempt's trailing metadata)."""
        try:
            verdict = self.judge(code, trailing)
        except BaseException:
            self.release(endpoint)  # an endpoint never acquired for good: its channel could not close
            raise
        self.report(instance, endpoint, verdict, latency, streamed=streamed)

    def judge(self, code: Any, trailing: Any) -> Verdict:
        """What a status says about the instance that returned it."""
        # Says nothing about this instance: a refusal it relays from further down, or its rate
        # limit answering. (Its own breaker refusing in the instance channel does: a failure, so
        # the instance is ejected rather than picked and refused on every call.)
        refused = code is not _OK and code is not None and _not_about_instance(trailing)
        if code in self.failure_codes and not refused:
            return _FAILURE
        if code is None or code is _CANCELLED or refused:
            # No status, the caller gave up, or a refusal by governance -- this instance's own
            # breaker, or one further down that it relays: says nothing about the instance.
            return _IGNORED
        return _SUCCESS


class Attempts:
    """One balanced unary call's way through its retry plan, shared by the sync and aio loops
    (they differ only in how they sleep): after a failed attempt, :meth:`failed` reports it and
    says how long to wait (None: give up); after the wait, :meth:`next_pick` gives the instance
    and timeout of the next attempt. An instance not tried yet goes at once (the refusing one's
    pushback and backoff are about it); one already tried only when the plan backs off (a
    governance retry rule) or the server asked for a delay."""

    __slots__ = ("_core", "_give_up_at", "_group", "_plan", "_retrying", "_view", "tried")

    def __init__(
        self, core: BalancedCore[Any], view: PoolView[Any], group: str | None, method: str,
        give_up_at: float | None,
    ) -> None:  # fmt: skip
        self._core = core
        self._view = view
        self._group = group
        self._give_up_at = give_up_at
        self._plan = core.first_attempt(method)
        self._retrying: RetryCall | None = None  # made on the first failure
        self.tried: tuple[str, ...] = ()

    def failed(
        self, instance: Instance, endpoint: Endpoint[Any] | PanicPick[Any], error: grpc.RpcError,
        latency: float,
    ) -> float | None:  # fmt: skip
        core = self._core
        code, trailing = rpc_error_code(error), trailing_of(error)
        core.finish(instance, endpoint, code, latency, trailing=trailing)
        self.tried = tried = (*self.tried, endpoint.address)
        retrying = self._retrying
        if retrying is None:
            retrying = self._retrying = new_retry_call(self._plan, self._give_up_at, core.clock)
        candidates = core.candidates(self._view, self._group)
        if any(c.address not in tried for c in candidates):
            return next_delay(retrying, code, trailing, elsewhere=True)
        if not candidates:
            return None
        delay = next_delay(retrying, code, trailing)
        if delay is None or (delay <= 0 and self._plan is core.failover_plan):
            return None  # failover only: no instance left that was not tried
        return delay

    def next_pick(self) -> tuple[Picked, float | None] | None:
        """The next attempt's instance (one not tried yet if any admits the call, else one
        already tried; never a panic pick) and timeout; None when none is left, or no time."""
        core, view, group = self._core, self._view, self._group
        assert self._retrying is not None
        timeout = self._retrying.remaining()
        picked = core.pick(view, group, self.tried) or core.pick(view, group, panic=False)
        if picked is None or (timeout is not None and timeout <= 0):
            if picked is not None:
                core.finish(*picked, None, 0.0, streamed=True)  # hand it back unused
            return None
        return picked, timeout


def _not_about_instance(trailing: Any) -> bool:
    return relayed(trailing) is not None or refusal(trailing) == "rate_limit"


def trailing_of(error: grpc.RpcError) -> Any:
    """A failed attempt's trailing metadata (refusal marks, retry pushback); () if it has none."""
    read = getattr(error, "trailing_metadata", None)
    try:
        return (read() if callable(read) else None) or ()
    except Exception:
        return ()


class Multicallable:
    """What a channel's ``unary_unary`` ... return: ``key`` names grpc's multicallable, which each
    instance channel makes on first use."""

    __slots__ = ("_core", "_key")

    def __init__(self, core: BalancedCore[Any], key: MethodKey) -> None:
        self._core = core
        self._key = key


class Balanced:
    """What the sync and aio service channels report alike."""

    _core: BalancedCore[Any]

    @property
    def service(self) -> str:
        return self._core.service

    def breakers(self) -> dict[str, CircuitBreaker]:
        """The breaker of each current instance, by address (an ejected one is not admitting)."""
        return self._core.breakers()

    def ejected(self) -> list[str]:
        """Addresses of current instances whose breaker is open (a plain read of each state)."""
        return self._core.ejected()


def channel_method(kind: str, multicallable: Callable[[BalancedCore[Any], MethodKey], Any]) -> Any:
    """The channel method ``kind`` (``unary_unary`` ...), returning a ``multicallable``."""

    def make(
        self: Balanced,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        key = (kind, method, request_serializer, response_deserializer, _registered_method)
        return multicallable(self._core, key)

    make.__name__ = kind
    return make
