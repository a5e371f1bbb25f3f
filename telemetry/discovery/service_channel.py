"""``ServiceChannel``: a sync grpc channel for a service name, balanced over its live instances.

What a call goes through (membership, routing, ejection, balancing, retries) is described in
:mod:`telemetry.discovery.balanced`; this module only makes the sync calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import grpc

from telemetry.discovery.balanced import (
    FAILURE_CODES,
    RETRY_CODES,
    Attempts,
    Balanced,
    BalancedCore,
    Multicallable,
    channel_method,
    trailing_of,
)
from telemetry.discovery.balancer import Balancer
from telemetry.discovery.instance_pool import InstanceSource
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.retry import RetryBudget, RetryPlan
from telemetry.rpc.client import FailedCall
from telemetry.rpc.status import rpc_error_code

__all__ = ["ServiceChannel"]

_OK = grpc.StatusCode.OK
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


class _SyncMulticallable(Multicallable):
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
            trailing = trailing_of(done) if code is not _OK else ()
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
        attempts = Attempts(core, view, group, self._key[1], give_up_at)
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


class ServiceChannel(Balanced, grpc.Channel):
    """A sync channel for a service name, balanced over its instances (see
    :mod:`telemetry.discovery.balanced`).

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
        failure_codes: Collection[grpc.StatusCode] = FAILURE_CODES,
        retry_codes: Collection[grpc.StatusCode] = RETRY_CODES,
        clock: Clock = monotonic,
        panic: bool = True,
        retry_plans: Callable[[str], RetryPlan | None] | None = None,
    ) -> None:
        """``retry_budget`` None: :func:`~telemetry.discovery.balanced.default_retry_budget`;
        ``breaker_factory`` None: :func:`~telemetry.discovery.instance_pool.default_breaker`;
        ``max_attempts`` counts the first attempt (1 disables retries); ``panic``: when every
        instance is ejected, call one anyway rather than refuse locally."""
        self._core: BalancedCore[grpc.Channel] = BalancedCore(
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

    unary_unary = channel_method("unary_unary", _SyncUnaryUnary)
    unary_stream = channel_method("unary_stream", _SyncUnaryStream)
    stream_unary = channel_method("stream_unary", _SyncStreamUnary)
    # The same shape as unary_stream: one request object (an iterator), a stream out.
    stream_stream = channel_method("stream_stream", _SyncUnaryStream)

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
