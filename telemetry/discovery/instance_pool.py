"""The instances of one service that a balanced channel calls: membership, picking, ejection and
readmission.

No grpc here (nor anywhere this module imports): channels are opaque values made by
``make_channel`` and outcomes arrive as :class:`Verdict` s, so the logic runs, and is tested, on a
fake clock without a server. :mod:`telemetry.discovery.balanced` maps grpc statuses to verdicts and
adds the retries.

* *Membership.* ``source.instances(service)`` is read on every :meth:`InstancePool.view`; only
  when it is not the very object seen last time does the pool reconcile: new addresses get an
  endpoint (a breaker now, a channel on first use), addresses that left are retired and their
  channel is closed once the calls running on it have finished. Addresses that stay keep their
  endpoint, hence their breaker state and channel.
* *Picking.* :meth:`InstancePool.pick` narrows the instances to the call's routing group and lets
  the balancer choose among those whose breaker admits the call.
* *Ejection.* An instance's breaker opens on failures and stops admitting calls; when every
  candidate is ejected a first attempt goes to one anyway (a panic pick, see :class:`PanicPick`).
* *Readmission.* After the breaker's open wait, its half-open probes and recovery ramp bring the
  instance back; nothing here runs on a timer.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, Protocol, TypeVar

from opentelemetry import baggage

from telemetry.discovery.balancer import Balancer, route
from telemetry.discovery.instance import Instance
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.breaker import BreakerState, CircuitBreaker

__all__ = [
    "Endpoint",
    "InstancePool",
    "InstanceSource",
    "MethodKey",
    "PanicPick",
    "Picked",
    "PoolView",
    "Verdict",
    "default_breaker",
]

_log = logging.getLogger(__name__)

_NEVER_SLOW = 365 * 24 * 3600.0  # the breaker wants a finite slow-call duration
_MAX_ROUTES = 64  # cached routing results per membership; baggage values are caller-controlled

C = TypeVar("C")

MethodKey = tuple[str, str, Any, Any, Any]
"""(kind, method, request_serializer, response_deserializer, _registered_method): a channel's
arguments for one multicallable, ``kind`` being its method (``unary_unary`` ...)."""


class Verdict(enum.Enum):
    """What one call says about the instance that served it."""

    SUCCESS = "success"
    FAILURE = "failure"  # counts towards ejecting the instance
    IGNORED = "ignored"  # says nothing about the instance (no status, cancelled, relayed refusal)


# Module constants: compared by identity on every call, without an enum attribute lookup.
_FAILURE = Verdict.FAILURE
_IGNORED = Verdict.IGNORED


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


class Endpoint(Generic[C]):
    """One instance address: its breaker, its channel (made on first use) and multicallables."""

    __slots__ = ("active", "address", "breaker", "callables", "channel", "retired")

    def __init__(self, address: str, breaker: CircuitBreaker) -> None:
        self.address = address
        self.breaker = breaker
        self.channel: C | None = None
        self.callables: dict[MethodKey, Any] = {}
        self.active = 0  # calls running on the channel; a retired channel closes when it reaches 0
        self.retired = False

    def callable(self, key: MethodKey) -> Any:
        """The channel's multicallable for ``key``, made on first use."""
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


class PanicPick(Generic[C]):
    """An ejected instance called anyway because every candidate is ejected (Envoy's panic mode):
    when all look sick, the likelier story is a shared cause -- a failing dependency behind them
    all -- and refusing every call locally would turn a partial outage into a total one."""

    __slots__ = ("endpoint",)
    breaker = _Unjudged()

    def __init__(self, endpoint: Endpoint[C]) -> None:
        self.endpoint = endpoint

    @property
    def address(self) -> str:
        return self.endpoint.address

    def callable(self, key: MethodKey) -> Any:
        return self.endpoint.callable(key)


def _unwrap(endpoint: Endpoint[C] | PanicPick[C]) -> Endpoint[C]:
    return endpoint.endpoint if isinstance(endpoint, PanicPick) else endpoint


class PoolView(Generic[C]):
    """One membership snapshot: the source's object, its endpoints, and routing results."""

    __slots__ = ("endpoints", "instances", "routes")

    def __init__(self, instances: Sequence[Instance], endpoints: dict[str, Endpoint[C]]) -> None:
        self.instances = instances
        self.endpoints = endpoints
        self.routes: dict[str | None, list[Instance]] = {}


Picked = tuple[Instance, "Endpoint[Any] | PanicPick[Any]"]
"""A picked instance and its acquired endpoint: report it exactly once (:meth:`InstancePool.report`)."""


class InstancePool(Generic[C]):
    """The live instances of ``service`` with an endpoint each, one thread- and asyncio-safe object
    per balanced channel. Channels (``C``) come from ``make_channel`` and go to ``close_channel``."""

    def __init__(
        self,
        *,
        service: str,
        source: InstanceSource,
        make_channel: Callable[[str], C],
        close_channel: Callable[[C], None],
        balancer: Balancer,
        route_baggage_key: str | None = "group",
        breaker_factory: Callable[[], CircuitBreaker] | None = None,
        clock: Clock = monotonic,
        panic: bool = True,
    ) -> None:
        if not service:
            raise ValueError("service must be a non-empty string")
        self.service = service
        self.panic = panic
        self.source = source
        self.make_channel = make_channel
        self.close_channel = close_channel
        self.balancer = balancer
        self.route_baggage_key = route_baggage_key
        self.breaker_factory = breaker_factory or (lambda: default_breaker(clock))
        self.clock = clock
        self._lock = threading.Lock()
        self._view: PoolView[C] = PoolView((), {})
        self._draining: set[Endpoint[C]] = set()  # retired, calls still running
        self._closed = False

    # -- membership ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def view(self) -> PoolView[C]:
        """The current membership, reconciled with the source when its object changed."""
        if self._closed:
            raise ValueError("Cannot invoke RPC on closed channel!")  # grpc's own wording
        current = self.source.instances(self.service)
        view = self._view
        return view if current is view.instances else self._reconcile(current)

    def _reconcile(self, current: Sequence[Instance]) -> PoolView[C]:
        to_close: list[C] = []
        with self._lock:
            old = self._view
            if current is old.instances:
                return old
            endpoints: dict[str, Endpoint[C]] = {}
            for instance in current:
                address = instance.address
                if address not in endpoints:
                    endpoint = old.endpoints.get(address)
                    endpoints[address] = endpoint or Endpoint(address, self.breaker_factory())
            for address, endpoint in old.endpoints.items():
                if address not in endpoints:
                    endpoint.retired = True
                    if endpoint.active:
                        self._draining.add(endpoint)
                    elif endpoint.channel is not None:
                        to_close.append(endpoint.channel)
                        endpoint.channel = None
            view = self._view = PoolView(current, endpoints)
        for channel in to_close:  # outside the lock: closing may block or call back
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
            self._view = PoolView((), {})
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

    def candidates(self, view: PoolView[C], group: str | None) -> list[Instance]:
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
        self, view: PoolView[C], group: str | None, exclude: Collection[str] = (), *, panic: bool = True
    ) -> Picked | None:
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
                return instance, PanicPick(endpoint)
        return None

    def _acquire(self, endpoint: Endpoint[C]) -> bool:
        with self._lock:
            if endpoint.retired:
                return False
            if endpoint.channel is None:
                endpoint.channel = self.make_channel(endpoint.address)
            endpoint.active += 1
            return True

    def release(self, endpoint: Endpoint[C] | PanicPick[C]) -> None:
        """Hand back an acquired endpoint; a retired one's channel closes with its last call."""
        real = _unwrap(endpoint)
        channel = None
        with self._lock:
            real.active -= 1
            if real.retired and real.active == 0 and real.channel is not None:
                channel, real.channel = real.channel, None
                self._draining.discard(real)
        if channel is not None:
            self.close_quietly(channel)

    # -- outcomes --------------------------------------------------------------------------------

    def started(self, instance: Instance) -> None:
        try:
            self.balancer.on_start(instance)
        except Exception:
            _log.exception("balancer on_start failed")

    def report(
        self,
        instance: Instance,
        endpoint: Endpoint[Any] | PanicPick[Any],
        verdict: Verdict,
        latency: float,
        *,
        streamed: bool = False,
    ) -> None:
        """Report one attempt's outcome to the instance's breaker and the balancer, and release its
        endpoint. ``streamed``: a stream's duration is not a latency, so the balancer does not hear
        of it and the breaker's slow-call rate does not count it."""
        try:
            breaker = endpoint.breaker
            duration = 0.0 if streamed else latency
            if verdict is _FAILURE:
                breaker.on_failure(duration)
            elif verdict is _IGNORED:
                breaker.on_ignored()
            else:
                breaker.on_success(duration)
            if not streamed:
                try:
                    self.balancer.on_done(instance, latency, verdict is not _FAILURE)
                except Exception:
                    _log.exception("balancer on_done failed")
        finally:
            self.release(endpoint)
