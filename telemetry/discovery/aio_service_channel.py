"""``AioServiceChannel``: a grpc.aio channel for a service name, balanced over its live instances.

What a call goes through (membership, routing, ejection, balancing, retries) is described in
:mod:`telemetry.discovery.balanced`; this module only makes the grpc.aio calls. A streaming call
refused locally (no instance) is :class:`telemetry.rpc.aio_client.FailedStreamCall`, shared with the
governed aio channels. A unary call is :class:`_AioUnaryCall`, its own: no shared call type runs
attempts over several instances (``telemetry.rpc.aio_channel.UnaryCall`` retries one target inside
a concern chain), and a local refusal comes from inside its task, where membership is read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Generator
from typing import Any

import grpc
import grpc.aio

from telemetry.discovery.balanced import (
    FAILURE_CODES,
    RETRY_CODES,
    Attempts,
    Balanced,
    BalancedCore,
    Multicallable,
    channel_method,
)
from telemetry.discovery.balancer import Balancer
from telemetry.discovery.instance_pool import InstanceSource, MethodKey
from telemetry.governance._types import Clock, monotonic
from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.retry import RetryBudget, RetryPlan
from telemetry.rpc.aio_calls import FailedStreamCall

__all__ = ["AioServiceChannel"]

_log = logging.getLogger(__name__)

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

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


class _AioUnaryCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    """What a balanced aio unary-unary call returns. The attempts run in a task started at once (grpc.aio
    calls start when made, not when awaited); awaiting gives the response or the last attempt's error,
    and ``code()`` / ``details()`` / metadata are those of the last attempt."""

    def __init__(
        self,
        core: BalancedCore[grpc.aio.Channel],
        key: MethodKey,
        request: Any,
        timeout: float | None,
        metadata: Any,
        options: dict[str, Any],
    ) -> None:
        self._core = core
        self._attempt: grpc.aio.UnaryUnaryCall[Any, Any] | None = None  # the current attempt
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
        key: MethodKey,
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
        attempts = Attempts(core, view, group, key[1], self._give_up_at)
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

    async def _settled(self) -> grpc.aio.UnaryUnaryCall[Any, Any] | None:
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

    async def initial_metadata(self) -> grpc.aio.Metadata:
        attempt = await self._settled()
        return grpc.aio.Metadata() if attempt is None else await attempt.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
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


class _AioUnaryUnary(Multicallable):
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


class _AioStreaming(Multicallable):
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


class AioServiceChannel(Balanced, grpc.aio.Channel):
    """A grpc.aio channel for a service name, balanced over its instances (see
    :mod:`telemetry.discovery.balanced`).

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
        failure_codes: Collection[grpc.StatusCode] = FAILURE_CODES,
        retry_codes: Collection[grpc.StatusCode] = RETRY_CODES,
        clock: Clock = monotonic,
        panic: bool = True,
        retry_plans: Callable[[str], RetryPlan | None] | None = None,
    ) -> None:
        """The same arguments as :class:`ServiceChannel`, with grpc.aio channels."""
        self._closing: set[asyncio.Task[None]] = set()
        self._core: BalancedCore[grpc.aio.Channel] = BalancedCore(
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

    unary_unary = channel_method("unary_unary", _AioUnaryUnary)
    unary_stream = channel_method("unary_stream", _AioStreaming)
    stream_unary = channel_method("stream_unary", _AioStreaming)
    stream_stream = channel_method("stream_stream", _AioStreaming)

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
