"""One channel for a service name: calls are balanced over its live instances.

``ServiceChannel`` (sync) and ``AioServiceChannel`` (grpc.aio) look like ordinary channels, so generated
stubs work unchanged::

    channel = ServiceChannel(service="inventory", source=watch_cache, make_channel=tel.channel,
                             balancer=build_balancer("p2c"))
    inventory = InventoryStub(channel)

Per call:

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

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import grpc
import grpc.aio
from opentelemetry import baggage

from telemetry.discovery.balancer import Balancer, route
from telemetry.discovery.instance import Instance
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.retry import RetryBudget, RetryCall, RetryPlan, RetryPolicy
from telemetry.governance.rules import DEFAULT_FAILURE_CODES
from telemetry.rpc.aio_client import FailedStreamCall
from telemetry.rpc.client import FailedCall
from telemetry.rpc.relay import note_refusal, refusal, relayed
from telemetry.rpc.retrying import new_retry_call, next_delay
from telemetry.rpc.status import rpc_error_code

__all__ = [
    "RETRY_CODES",
    "AioServiceChannel",
    "InstanceSource",
    "ServiceChannel",
    "default_breaker",
    "default_retry_budget",
]

_log = logging.getLogger(__name__)

RETRY_CODES: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
"""Codes retried on another instance."""

# What ejects an instance: the transport or the server failing. Not RESOURCE_EXHAUSTED: that is the
# server answering "over a limit" (often a per-user one), which says nothing about the instance's
# health; overload is the balancer's to weigh and the retry's to route around.
_FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    grpc.StatusCode[name] for name in DEFAULT_FAILURE_CODES if name != "RESOURCE_EXHAUSTED"
)
_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_NEVER_SLOW = 365 * 24 * 3600.0  # the breaker wants a finite slow-call duration
_MAX_ROUTES = 64  # cached routing results per membership; baggage values are caller-controlled

C = TypeVar("C")

_Key = tuple[str, str, Any, Any, Any]
"""(kind, method, request_serializer, response_deserializer, _registered_method): a channel's
arguments for one multicallable, ``kind`` being its method (``unary_unary`` ...)."""


class InstanceSource(Protocol):
    """Where the live instances of a service come from (the etcd watch cache, a static list)."""

    def instances(self, service: str) -> Sequence[Instance]:
        """The live instances of ``service``. Return the same object while membership is unchanged:
        channels compare it by identity on every call and reconcile only when it changes."""
        ...


def default_breaker(clock: Clock = monotonic) -> CircuitBreaker:
    """Per-instance ejection: 5 consecutive failures (or the breaker's default failure rate, 50% of
    the last 20 calls) eject an instance for 1 s, then its half-open probes and ramp readmit it.
    Slow calls never eject: slowness is the balancer's to weigh, and a slow method is not a sick
    instance."""
    return CircuitBreaker(
        consecutive_failures=5, open_wait=1.0, slow_call_duration=_NEVER_SLOW, clock=clock
    )


def default_retry_budget(clock: Clock = monotonic) -> RetryBudget:
    """The governance default: retries up to 10% of calls plus 1 per second (over 10 s)."""
    return RetryBudget(ratio=0.1, min_per_second=1.0, clock=clock)


# -- the shared core: membership, endpoints, routing, picking, outcomes --------------------------


class _Endpoint(Generic[C]):
    """One instance address: its breaker, its channel (made on first use) and multicallables."""

    __slots__ = ("active", "address", "breaker", "callables", "channel", "retired")

    def __init__(self, address: str, breaker: CircuitBreaker) -> None:
        self.address = address
        self.breaker = breaker
        self.channel: C | None = None
        self.callables: dict[_Key, Any] = {}
        self.active = 0  # calls running on the channel; a retired channel closes when it reaches 0
        self.retired = False

    def callable(self, key: _Key) -> Any:
        """grpc's multicallable for ``key``, made on first use."""
        found = self.callables.get(key)
        if found is None:
            kind, *arguments = key
            # A racing thread may build it twice; either copy is fine.
            found = self.callables[key] = getattr(self.channel, kind)(*arguments)
        return found


class _Unjudged:
    """The breaker of a panic pick: its outcome is not reported (the call was never admitted)."""

    __slots__ = ()

    def on_success(self, duration: float) -> None:
        pass

    def on_failure(self, duration: float) -> None:
        pass

    def on_ignored(self) -> None:
        pass


class _PanicPick(Generic[C]):
    """An ejected instance called anyway because every candidate is ejected (Envoy's panic mode):
    when all look sick, the likelier story is a shared cause -- a failing dependency behind them
    all -- and refusing every call locally would turn a partial outage into a total one."""

    __slots__ = ("endpoint",)
    breaker = _Unjudged()

    def __init__(self, endpoint: _Endpoint[C]) -> None:
        self.endpoint = endpoint

    @property
    def address(self) -> str:
        return self.endpoint.address

    def callable(self, key: _Key) -> Any:
        return self.endpoint.callable(key)


def _unwrap(endpoint: _Endpoint[C] | _PanicPick[C]) -> _Endpoint[C]:
    return endpoint.endpoint if isinstance(endpoint, _PanicPick) else endpoint


class _View(Generic[C]):
    """One membership snapshot: the source's object, its endpoints, and routing results."""

    __slots__ = ("endpoints", "instances", "routes")

    def __init__(self, instances: Sequence[Instance], endpoints: dict[str, _Endpoint[C]]) -> None:
        self.instances = instances
        self.endpoints = endpoints
        self.routes: dict[str | None, list[Instance]] = {}


_Picked = tuple[Instance, "_Endpoint[Any] | _PanicPick[Any]"]


class _Core(Generic[C]):
    """Everything but the calls themselves; shared by the sync and aio channels."""

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
        if not service:
            raise ValueError("service must be a non-empty string")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self.service = service
        self.panic = panic
        self.source = source
        self.make_channel = make_channel
        self.close_channel = close_channel
        self.balancer = balancer
        self.route_baggage_key = route_baggage_key
        self.budget = retry_budget if retry_budget is not None else default_retry_budget(clock)
        self.retry_plans = retry_plans
        # Failover without governance: another instance at once, no backoff.
        self.failover_plan = RetryPlan(
            RetryPolicy(max_attempts=max_attempts, initial_backoff=0.0, max_backoff=0.0, jitter=0.0),
            frozenset(retry_codes),
            self.budget,
        )
        self.breaker_factory = breaker_factory or (lambda: default_breaker(clock))
        self.failure_codes = frozenset(failure_codes)
        self.clock = clock
        self._lock = threading.Lock()
        self._view: _View[C] = _View((), {})
        self._draining: set[_Endpoint[C]] = set()  # retired, calls still running
        self._closed = False

    # -- membership ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def view(self) -> _View[C]:
        if self._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")  # grpc's own wording
        current = self.source.instances(self.service)
        view = self._view
        return view if current is view.instances else self._reconcile(current)

    def _reconcile(self, current: Sequence[Instance]) -> _View[C]:
        to_close: list[C] = []
        with self._lock:
            old = self._view
            if current is old.instances:
                return old
            endpoints: dict[str, _Endpoint[C]] = {}
            for instance in current:
                address = instance.address
                if address not in endpoints:
                    endpoint = old.endpoints.get(address)
                    endpoints[address] = endpoint or _Endpoint(address, self.breaker_factory())
            for address, endpoint in old.endpoints.items():
                if address not in endpoints:
                    endpoint.retired = True
                    if endpoint.active:
                        self._draining.add(endpoint)
                    elif endpoint.channel is not None:
                        to_close.append(endpoint.channel)
                        endpoint.channel = None
            view = self._view = _View(current, endpoints)
        for channel in to_close:
            self.close_quietly(channel)
        return view

    def close_quietly(self, channel: C) -> None:
        try:
            self.close_channel(channel)
        except Exception:
            _log.exception("closing the channel of a removed %s instance failed", self.service)

    def close(self) -> list[C]:
        """Mark closed; the channels to close (running calls on them are cancelled)."""
        with self._lock:
            self._closed = True
            endpoints = [*self._view.endpoints.values(), *self._draining]
            self._view = _View((), {})
            self._draining.clear()
            channels: list[C] = []
            for endpoint in endpoints:
                endpoint.retired = True
                if endpoint.channel is not None:
                    channels.append(endpoint.channel)
                    endpoint.channel = None
        return channels

    def channels(self, *, create: bool = False) -> list[C]:
        """The channels of current instances (made now for all of them when ``create``)."""
        view = self.view() if create else self._view
        with self._lock:
            if create:
                for endpoint in view.endpoints.values():
                    if endpoint.channel is None and not endpoint.retired:
                        endpoint.channel = self.make_channel(endpoint.address)
            return [e.channel for e in view.endpoints.values() if e.channel is not None]

    def breakers(self) -> dict[str, CircuitBreaker]:
        return {address: e.breaker for address, e in self._view.endpoints.items()}

    def ejected(self) -> list[str]:
        return [a for a, e in self._view.endpoints.items() if e.breaker.state is not BreakerState.CLOSED]

    # -- routing and picking ---------------------------------------------------------------------

    def route_group(self) -> str | None:
        """The routing group asked for by the current baggage, if any."""
        key = self.route_baggage_key
        if key is None:
            return None
        value = baggage.get_baggage(key)
        return str(value) if value else None

    def candidates(self, view: _View[C], group: str | None) -> list[Instance]:
        routes = view.routes
        pool = routes.get(group)
        if pool is None:
            pool = route(view.instances, group=group, metadata=None)
            if group is not None and not pool:
                # Nothing in that group (a canary gone): the default pool serves the call.
                pool = route(view.instances, group=None, metadata=None)
            if len(routes) >= _MAX_ROUTES:
                routes.clear()
            routes[group] = pool
        return pool

    def pick(
        self, view: _View[C], group: str | None, exclude: Collection[str] = (), *, panic: bool = True
    ) -> _Picked | None:
        """An instance whose breaker admits the call, its endpoint acquired. When every candidate is
        ejected, a first attempt goes to one of them anyway (a panic pick, whose outcome no breaker
        counts); a retry gets None."""
        candidates = self.candidates(view, group)
        if exclude:
            candidates = [c for c in candidates if c.address not in exclude]
        everyone = candidates
        while candidates:
            instance = self.balancer.pick(candidates)
            endpoint = view.endpoints[instance.address]
            if endpoint.breaker.try_acquire():
                if self._acquire(endpoint):
                    return instance, endpoint
                endpoint.breaker.on_ignored()  # removed meanwhile: hand back a probe permit
            # Ejected (or removed): the others share the call.
            address = instance.address
            candidates = [c for c in candidates if c.address != address]
        if everyone and not exclude and panic and self.panic:
            instance = self.balancer.pick(everyone)
            endpoint = view.endpoints[instance.address]
            if self._acquire(endpoint):
                return instance, _PanicPick(endpoint)
        return None

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

    def refuse_locally(self, view: _View[C]) -> str:
        """Refuse a call locally (no instance to call): note the refusal on the call being served,
        whose failure then relays it (telemetry.rpc.relay); returns why, for the error."""
        note_refusal("discovery")
        if not view.instances:
            return f"no instances of service {self.service!r}"
        return f"no available instance of service {self.service!r}: all are ejected by their breakers"

    def _acquire(self, endpoint: _Endpoint[C]) -> bool:
        with self._lock:
            if endpoint.retired:
                return False
            if endpoint.channel is None:
                endpoint.channel = self.make_channel(endpoint.address)
            endpoint.active += 1
            return True

    def _release(self, endpoint: _Endpoint[C]) -> None:
        channel = None
        with self._lock:
            endpoint.active -= 1
            if endpoint.retired and endpoint.active == 0 and endpoint.channel is not None:
                channel, endpoint.channel = endpoint.channel, None
                self._draining.discard(endpoint)
        if channel is not None:
            self.close_quietly(channel)

    # -- outcomes --------------------------------------------------------------------------------

    def started(self, instance: Instance) -> None:
        try:
            self.balancer.on_start(instance)
        except Exception:
            _log.exception("balancer on_start failed")

    def finish(
        self,
        instance: Instance,
        endpoint: _Endpoint[Any] | _PanicPick[Any],
        code: Any,
        latency: float,
        *,
        streamed: bool = False,
        trailing: Any = (),
    ) -> None:
        """Report one attempt's outcome (``code`` None: no status, e.g. a local exception;
        ``trailing``: a failed attempt's trailing metadata)."""
        real = _unwrap(endpoint)
        try:
            breaker = endpoint.breaker
            # Says nothing about this instance: a refusal it relays from further down, or its
            # rate limit answering. (Its own breaker refusing in the instance channel does: a
            # failure, so the instance is ejected rather than picked and refused on every call.)
            refused = code is not _OK and code is not None and _not_about_instance(trailing)
            failed = code in self.failure_codes and not refused
            duration = 0.0 if streamed else latency
            if failed:
                breaker.on_failure(duration)
            elif code is None or code is _CANCELLED or refused:
                # No status, the caller gave up, or a refusal by governance -- this instance's own
                # breaker, or one further down that it relays: says nothing about the instance.
                breaker.on_ignored()
            else:
                breaker.on_success(duration)
            if not streamed:
                try:
                    self.balancer.on_done(instance, latency, not failed)
                except Exception:
                    _log.exception("balancer on_done failed")
        finally:
            self._release(real)


class _Attempts:
    """One balanced unary call's way through its retry plan, shared by the sync and aio loops
    (they differ only in how they sleep): after a failed attempt, :meth:`failed` reports it and
    says how long to wait (None: give up); after the wait, :meth:`next_pick` gives the instance
    and timeout of the next attempt. An instance not tried yet goes at once (the refusing one's
    pushback and backoff are about it); one already tried only when the plan backs off (a
    governance retry rule) or the server asked for a delay."""

    __slots__ = ("_core", "_give_up_at", "_group", "_plan", "_retrying", "_view", "tried")

    def __init__(
        self, core: _Core[Any], view: _View[Any], group: str | None, method: str,
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
        self, instance: Instance, endpoint: _Endpoint[Any] | _PanicPick[Any], error: grpc.RpcError,
        latency: float,
    ) -> float | None:  # fmt: skip
        core = self._core
        code, trailing = rpc_error_code(error), _trailing(error)
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

    def next_pick(self) -> tuple[_Picked, float | None] | None:
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


def _trailing(error: grpc.RpcError) -> Any:
    """A failed attempt's trailing metadata (refusal marks, retry pushback); () if it has none."""
    read = getattr(error, "trailing_metadata", None)
    try:
        return (read() if callable(read) else None) or ()
    except Exception:
        return ()


class _Multicallable:
    """What a channel's ``unary_unary`` ... return: ``key`` names grpc's multicallable, which each
    instance channel makes on first use."""

    __slots__ = ("_core", "_key")

    def __init__(self, core: _Core[Any], key: _Key) -> None:
        self._core = core
        self._key = key


def _factory(kind: str, multicallable: Callable[[_Core[Any], _Key], Any]) -> Any:
    """The channel method ``kind`` (``unary_unary`` ...), returning a ``multicallable``."""

    def make(
        self: ServiceChannel | AioServiceChannel,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: Any = False,
    ) -> Any:
        key = (kind, method, request_serializer, response_deserializer, _registered_method)
        return multicallable(self._core, key)

    make.__name__ = kind
    return make


# -- sync ------------------------------------------------------------------------------------------


class _SyncMulticallable(_Multicallable):
    __slots__ = ()

    def _single(
        self, request: Any, timeout: Any, metadata: Any, options: Any, *, future: bool, streamed: bool
    ) -> Any:
        """A non-blocking call on one picked instance (a future or a response stream), reported when
        it is done; with no instance, a finished, failed call (grpc's shape for a failed call)."""
        core = self._core
        view = core.view()
        picked = core.pick(view, core.route_group())
        if picked is None:
            return FailedCall(_UNAVAILABLE, core.refuse_locally(view))
        instance, endpoint = picked
        if not streamed:
            core.started(instance)
        clock = core.clock
        start = clock()
        try:
            target = endpoint.callable(self._key)
            call = (target.future if future else target)(
                request, timeout=timeout, metadata=metadata, **options
            )
        except BaseException:
            core.finish(instance, endpoint, None, clock() - start, streamed=streamed)
            raise

        def report(done: Any) -> None:
            code = rpc_error_code(done)
            trailing = _trailing(done) if code is not _OK else ()
            core.finish(instance, endpoint, code, clock() - start, streamed=streamed, trailing=trailing)

        call.add_done_callback(report)
        return call


class _SyncUnaryUnary(_SyncMulticallable):
    """``__call__`` / ``with_call`` retry on another instance; ``future`` is a single attempt."""

    __slots__ = ()

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self.with_call(request, timeout, metadata, **options)[0]

    def with_call(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> tuple[Any, Any]:
        core = self._core
        clock = core.clock
        give_up_at = None if timeout is None else clock() + timeout
        view = core.view()
        group = core.route_group()
        picked = core.pick(view, group)
        if picked is None:
            raise FailedCall(_UNAVAILABLE, core.refuse_locally(view))
        attempts = _Attempts(core, view, group, self._key[1], give_up_at)
        while True:
            instance, endpoint = picked
            core.started(instance)
            start = clock()
            try:
                response, call = endpoint.callable(self._key).with_call(
                    request, timeout=timeout, metadata=metadata, **options
                )
            except grpc.RpcError as error:
                delay = attempts.failed(instance, endpoint, error, clock() - start)
                if delay is None:
                    raise
                if delay > 0:
                    time.sleep(delay)
                step = attempts.next_pick()
                if step is None:
                    raise
                picked, timeout = step
            except BaseException:
                core.finish(instance, endpoint, None, clock() - start)
                raise
            else:
                core.finish(instance, endpoint, _OK, clock() - start)
                return response, call

    def future(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self._single(request, timeout, metadata, options, future=True, streamed=False)


class _SyncUnaryStream(_SyncMulticallable):
    __slots__ = ()

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self._single(request, timeout, metadata, options, future=False, streamed=True)


class _SyncStreamUnary(_SyncMulticallable):
    __slots__ = ()

    def __call__(
        self, request_iterator: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self.with_call(request_iterator, timeout, metadata, **options)[0]

    def with_call(
        self, request_iterator: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> tuple[Any, Any]:
        core = self._core
        view = core.view()
        picked = core.pick(view, core.route_group())
        if picked is None:
            raise FailedCall(_UNAVAILABLE, core.refuse_locally(view))
        instance, endpoint = picked
        code = None
        try:
            response, call = endpoint.callable(self._key).with_call(
                request_iterator, timeout=timeout, metadata=metadata, **options
            )
            code = _OK
        except grpc.RpcError as error:
            code = rpc_error_code(error)
            raise
        finally:
            core.finish(instance, endpoint, code, 0.0, streamed=True)
        return response, call

    def future(
        self, request_iterator: Any, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        return self._single(request_iterator, timeout, metadata, options, future=True, streamed=True)


class _Balanced:
    """What the sync and aio service channels report alike."""

    _core: _Core[Any]

    @property
    def service(self) -> str:
        return self._core.service

    def breakers(self) -> dict[str, CircuitBreaker]:
        """The breaker of each current instance, by address (an ejected one is not admitting)."""
        return self._core.breakers()

    def ejected(self) -> list[str]:
        """Addresses of current instances whose breaker is open (a plain read of each state)."""
        return self._core.ejected()


class ServiceChannel(_Balanced, grpc.Channel):
    """A sync channel for a service name, balanced over its instances (see the module docstring).

    ``subscribe`` / ``unsubscribe`` are no-ops: connectivity belongs to the per-instance channels.
    """

    def __init__(
        self,
        *,
        service: str,
        source: InstanceSource,
        make_channel: Callable[[str], grpc.Channel],
        balancer: Balancer,
        route_baggage_key: str | None = "group",
        retry_budget: RetryBudget | None = None,
        max_attempts: int = 3,
        breaker_factory: Callable[[], CircuitBreaker] | None = None,
        failure_codes: Collection[grpc.StatusCode] = _FAILURE_CODES,
        retry_codes: Collection[grpc.StatusCode] = RETRY_CODES,
        clock: Clock = monotonic,
        panic: bool = True,
        retry_plans: Callable[[str], RetryPlan | None] | None = None,
    ) -> None:
        """``retry_budget`` None: :func:`default_retry_budget`; ``breaker_factory`` None:
        :func:`default_breaker`; ``max_attempts`` counts the first attempt (1 disables retries);
        ``panic``: when every instance is ejected, call one anyway rather than refuse locally."""
        self._core: _Core[grpc.Channel] = _Core(
            service=service,
            source=source,
            make_channel=make_channel,
            close_channel=lambda channel: channel.close(),
            balancer=balancer,
            route_baggage_key=route_baggage_key,
            retry_budget=retry_budget,
            max_attempts=max_attempts,
            breaker_factory=breaker_factory,
            failure_codes=failure_codes,
            retry_codes=retry_codes,
            clock=clock,
            panic=panic,
            retry_plans=retry_plans,
        )

    unary_unary = _factory("unary_unary", _SyncUnaryUnary)
    unary_stream = _factory("unary_stream", _SyncUnaryStream)
    stream_unary = _factory("stream_unary", _SyncStreamUnary)
    # The same shape as unary_stream: one request object (an iterator), a stream out.
    stream_stream = _factory("stream_stream", _SyncUnaryStream)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        pass

    def unsubscribe(self, callback: Any) -> None:
        pass

    def close(self) -> None:
        """Close every instance channel; running calls are cancelled, later calls raise ValueError."""
        for channel in self._core.close():
            self._core.close_quietly(channel)

    def __enter__(self) -> ServiceChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- grpc.aio --------------------------------------------------------------------------------------

# Report tasks of aio streams: referenced until done, or the loop may collect them mid-flight.
_pending: set[asyncio.Task[None]] = set()


def _unavailable(details: str) -> grpc.aio.AioRpcError:
    """The aio error of a call refused locally: no instance to call."""
    return grpc.aio.AioRpcError(
        _UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details,
        f"refused locally by telemetry: {_UNAVAILABLE.name}: {details}",
    )


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the task's exception as seen: the caller gets it by awaiting the call, or not at all
    (a call nobody awaits), and asyncio should not log it either way."""
    if not task.cancelled():
        task.exception()


class _AioUnaryCall(grpc.aio.UnaryUnaryCall):
    """What a balanced aio unary-unary call returns. The attempts run in a task started at once (grpc.aio
    calls start when made, not when awaited); awaiting gives the response or the last attempt's error,
    and ``code()`` / ``details()`` / metadata are those of the last attempt."""

    def __init__(
        self,
        core: _Core[grpc.aio.Channel],
        key: _Key,
        request: Any,
        timeout: float | None,
        metadata: Any,
        options: dict[str, Any],
    ) -> None:
        self._core = core
        self._attempt: Any = None  # the current attempt's grpc.aio call
        self._local: grpc.aio.AioRpcError | None = None  # refused before any attempt
        self._give_up_at = None if timeout is None else core.clock() + timeout
        group = core.route_group()  # read now: the caller's baggage
        task = asyncio.get_running_loop().create_task(
            self._run(key, request, timeout, metadata, options, group)
        )
        task.add_done_callback(_retrieve)
        self._task = task

    async def _run(
        self,
        key: _Key,
        request: Any,
        timeout: float | None,
        metadata: Any,
        options: dict[str, Any],
        group: str | None,
    ) -> Any:
        core = self._core
        clock = core.clock
        view = core.view()
        picked = core.pick(view, group)
        if picked is None:
            self._local = _unavailable(core.refuse_locally(view))
            raise self._local
        attempts = _Attempts(core, view, group, key[1], self._give_up_at)
        while True:
            instance, endpoint = picked
            core.started(instance)
            start = clock()
            try:
                call = self._attempt = endpoint.callable(key)(
                    request, timeout=timeout, metadata=metadata, **options
                )
                response = await call
            except grpc.RpcError as error:
                delay = attempts.failed(instance, endpoint, error, clock() - start)
                if delay is None:
                    raise
                if delay > 0:
                    await asyncio.sleep(delay)
                step = attempts.next_pick()
                if step is None:
                    raise
                picked, timeout = step
            except BaseException:  # cancelled included: it says nothing about the instance
                core.finish(instance, endpoint, None, clock() - start)
                raise
            else:
                core.finish(instance, endpoint, _OK, clock() - start)
                return response

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()

    async def _settled(self) -> Any:
        """The call that decided the outcome (None: refused locally or failed before any attempt)."""
        if not self._task.done():
            await asyncio.wait((self._task,))
        return self._attempt

    async def code(self) -> grpc.StatusCode:
        attempt = await self._settled()
        if self._local is not None:
            return self._local.code()
        if attempt is None:
            return _CANCELLED if self._task.cancelled() else grpc.StatusCode.UNKNOWN
        return await attempt.code()

    async def details(self) -> str:
        attempt = await self._settled()
        if self._local is not None:
            return str(self._local.details())
        return "" if attempt is None else str(await attempt.details())

    async def initial_metadata(self) -> Any:
        attempt = await self._settled()
        return grpc.aio.Metadata() if attempt is None else await attempt.initial_metadata()

    async def trailing_metadata(self) -> Any:
        attempt = await self._settled()
        return grpc.aio.Metadata() if attempt is None else await attempt.trailing_metadata()

    async def wait_for_connection(self) -> None:
        """Waits for the whole call (attempts may move between instances)."""
        await self._settled()

    def cancel(self) -> bool:
        if self._task.done():
            return False
        if self._attempt is not None:
            self._attempt.cancel()
        return self._task.cancel()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    def time_remaining(self) -> float | None:
        if self._give_up_at is None:
            return None
        return max(0.0, self._give_up_at - self._core.clock())

    def add_done_callback(self, callback: Any) -> None:
        self._task.add_done_callback(lambda _task: callback(self))


class _AioUnaryUnary(_Multicallable):
    __slots__ = ()

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **options: Any,
    ) -> _AioUnaryCall:
        return _AioUnaryCall(self._core, self._key, request, timeout, metadata, options)


class _AioStreaming(_Multicallable):
    """Streaming kinds: one picked instance, no retry; the outcome feeds its breaker when done."""

    __slots__ = ()

    def __call__(
        self,
        request: Any = None,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **options: Any,
    ) -> Any:
        core = self._core
        view = core.view()
        picked = core.pick(view, core.route_group())
        if picked is None:
            return FailedStreamCall(_unavailable(core.refuse_locally(view)))
        instance, endpoint = picked
        try:
            call = endpoint.callable(self._key)(request, timeout=timeout, metadata=metadata, **options)
        except BaseException:
            core.finish(instance, endpoint, None, 0.0, streamed=True)
            raise

        async def report() -> None:
            code = trailing = None
            try:
                code = await call.code()
                if code is not _OK:
                    trailing = await call.trailing_metadata()
            except Exception:
                _log.debug("no status for a %s stream", core.service, exc_info=True)
            finally:
                core.finish(instance, endpoint, code, 0.0, streamed=True, trailing=trailing or ())

        def done(_call: Any) -> None:
            # The status is only readable by awaiting; the call is done, so this returns at once.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not called from the loop: release without a verdict
                core.finish(instance, endpoint, None, 0.0, streamed=True)
                return
            task = loop.create_task(report())
            _pending.add(task)
            task.add_done_callback(_pending.discard)

        call.add_done_callback(done)
        return call


_STATE_ORDER = (
    grpc.ChannelConnectivity.READY,
    grpc.ChannelConnectivity.CONNECTING,
    grpc.ChannelConnectivity.IDLE,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN,
)


class AioServiceChannel(_Balanced, grpc.aio.Channel):
    """A grpc.aio channel for a service name, balanced over its instances (see the module docstring).

    Connectivity is the best state among the instance channels (READY if any is, as grpc's
    ``round_robin`` reports it); IDLE before any exists.
    """

    def __init__(
        self,
        *,
        service: str,
        source: InstanceSource,
        make_channel: Callable[[str], grpc.aio.Channel],
        balancer: Balancer,
        route_baggage_key: str | None = "group",
        retry_budget: RetryBudget | None = None,
        max_attempts: int = 3,
        breaker_factory: Callable[[], CircuitBreaker] | None = None,
        failure_codes: Collection[grpc.StatusCode] = _FAILURE_CODES,
        retry_codes: Collection[grpc.StatusCode] = RETRY_CODES,
        clock: Clock = monotonic,
        panic: bool = True,
        retry_plans: Callable[[str], RetryPlan | None] | None = None,
    ) -> None:
        """The same arguments as :class:`ServiceChannel`, with grpc.aio channels."""
        self._closing: set[asyncio.Task[None]] = set()
        self._core: _Core[grpc.aio.Channel] = _Core(
            service=service,
            source=source,
            make_channel=make_channel,
            close_channel=self._close_later,
            balancer=balancer,
            route_baggage_key=route_baggage_key,
            retry_budget=retry_budget,
            max_attempts=max_attempts,
            breaker_factory=breaker_factory,
            failure_codes=failure_codes,
            retry_codes=retry_codes,
            clock=clock,
            panic=panic,
            retry_plans=retry_plans,
        )

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        """Retired channels close in a task: reconciling happens inside a (sync) pick."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (not from a call): nothing can be running on it
            return
        task = loop.create_task(channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    unary_unary = _factory("unary_unary", _AioUnaryUnary)
    unary_stream = _factory("unary_stream", _AioStreaming)
    stream_unary = _factory("stream_unary", _AioStreaming)
    stream_stream = _factory("stream_stream", _AioStreaming)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        if self._core.closed:
            return grpc.ChannelConnectivity.SHUTDOWN
        channels = self._core.channels(create=try_to_connect)
        states = {channel.get_state(try_to_connect) for channel in channels}
        return next((s for s in _STATE_ORDER if s in states), grpc.ChannelConnectivity.IDLE)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        while self.get_state() == last_observed_state:
            channels = self._core.channels()
            if not channels:
                await asyncio.sleep(0.05)  # nothing to watch until a call or channel_ready makes one
                continue
            waits = [
                asyncio.ensure_future(channel.wait_for_state_change(channel.get_state()))
                for channel in channels
            ]
            try:
                # Bounded: membership may change while we wait.
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def channel_ready(self) -> None:
        """Wait until some instance channel is READY (connecting to every current instance)."""
        while True:
            state = self.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.READY:
                return
            await self.wait_for_state_change(state)

    async def close(self, grace: float | None = None) -> None:
        """Close every instance channel (running calls are cancelled after ``grace``)."""
        channels = self._core.close()
        await asyncio.gather(
            *(channel.close(grace) for channel in channels), *self._closing, return_exceptions=True
        )

    async def __aenter__(self) -> AioServiceChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)
