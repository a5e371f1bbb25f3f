"""grpc.aio server adapter: the same concern chain as the sync adapter, with async wrappers.

Streaming handlers come in two styles: async generators, and coroutines that call
``await context.write()``. Both are supported (opentelemetry-instrumentation-grpc breaks the second);
for the write style a thin context proxy counts the messages written.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import grpc.aio

from telemetry.rpc._server_common import (
    INTERNAL_ERROR_DETAILS,
    UNDECODABLE_DETAILS,
    AioServingContext,
    MetadataPairs,
    ServerAdapterBase,
    Undecodable,
    new_handler,
    original_behavior,
)
from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall, RpcKind
from telemetry.rpc.concern import Concern, ConcernChain
from telemetry.rpc.relay import relay_metadata
from telemetry.rpc.status import bounded_details

if TYPE_CHECKING:
    from telemetry.rpc._server_common import Handler


class AioServerInterceptor(ServerAdapterBase, grpc.aio.ServerInterceptor):
    """Runs ``concerns`` around every RPC of a ``grpc.aio.Server``."""

    def __init__(self, concerns: Iterable[Concern]) -> None:
        super().__init__(concerns)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        return self.wrapped_handler(handler, handler_call_details.method)

    def wrap(self, handler: Handler, info: MethodInfo) -> Handler:
        behavior = original_behavior(handler, info.kind)
        streaming_in = handler.request_streaming
        if handler.response_streaming and inspect.isasyncgenfunction(behavior):
            return new_handler(handler, info.kind, self._stream_response(behavior, info, streaming_in))

        if info.kind is RpcKind.UNARY and inspect.iscoroutinefunction(behavior):
            return new_handler(handler, info.kind, self._unary(behavior, info))

        async def single_call(request: Any, context: AioServingContext) -> Any:
            return await self._single_call(behavior, info, streaming_in, request, context)

        return new_handler(handler, info.kind, single_call)

    def _unary(
        self, behavior: Callable[..., Any], info: MethodInfo
    ) -> Callable[[Any, AioServingContext], Awaitable[Any]]:
        """The unary behaviour of an ``async def`` handler: _begin, the handler and
        finish_returned folded into one coroutine, as the sync adapter does (each function layer
        costs ~1 us on the cold interpreter of a live process: benchmarks/RESULTS.md)."""
        chain = self.chain
        start, finish = chain.start, chain.finish
        finish_returned = self.finish_returned
        ok = grpc.StatusCode.OK

        async def unary(request: Any, context: AioServingContext) -> Any:
            state = CallState(info, perf_counter(), context.invocation_metadata(), context.peer())
            state.context = context
            # No concern (a fallback's fast path, say) gets the bytes that did not decode.
            state.request = None if request.__class__ is Undecodable else request
            try:
                start(state)
            except RejectCall as reject:
                if reject.trailing_metadata:
                    context.set_trailing_metadata(reject.trailing_metadata)
                if isinstance(reject, AnswerCall):  # a fallback stands in for the handler
                    return reject.response
                await context.abort(reject.code, reject.details)  # raises
            state.msgs_received = 1
            try:
                if state.deferred:  # governance holds it for its turn (a leaky bucket)
                    await asyncio.sleep(state.deferred)
                if request.__class__ is Undecodable:
                    await context.abort(grpc.StatusCode.INTERNAL, UNDECODABLE_DETAILS)
                response = await behavior(request, _ServedContext(context, state, None))
            except asyncio.CancelledError:  # deadline passed or client went away: grpc cancels us
                state.code = _cancellation_code(context)
                finish(state)
                raise
            except Exception as exc:
                await self._fail(state, exc, context)  # raises
            code = context.code()
            if code is None or code is ok:
                state.response = response
                state.msgs_sent = 1
            else:  # a status the handler set without raising
                finish_returned(state, context)
            finish(state)
            return response

        return unary

    async def _begin(
        self, info: MethodInfo, streaming_in: bool, request: Any, context: AioServingContext
    ) -> tuple[CallState, Any]:
        try:
            state = self.start_call(info, context, None if streaming_in else request)
        except AnswerCall:
            raise
        except RejectCall as reject:
            await context.abort(reject.code, reject.details)  # raises AbortError
        if state.deferred:  # governance holds it for its turn (a leaky bucket)
            try:
                await asyncio.sleep(state.deferred)
            except asyncio.CancelledError:
                state.code = _cancellation_code(context)
                self.chain.finish(state)
                raise
        if streaming_in:
            request = _count_requests(request, state, self.chain)
        else:
            self.chain.message(state, True)
        return state, request

    async def _single_call(
        self,
        behavior: Callable[..., Any],
        info: MethodInfo,
        streaming_in: bool,
        request: Any,
        context: AioServingContext,
    ) -> Any:
        """Unary and client-stream handlers, and streaming handlers that use context.write()."""
        try:
            state, request = await self._begin(info, streaming_in, request, context)
        except AnswerCall as answer:  # a fallback stands in for the handler
            return answer.response
        writes_responses = info.streams_responses
        call_context = _ServedContext(context, state, self.chain if writes_responses else None)
        try:
            if request.__class__ is Undecodable:
                await call_context.abort(grpc.StatusCode.INTERNAL, UNDECODABLE_DETAILS)
            response = behavior(request, call_context)
            if inspect.isawaitable(response):
                response = await response
        except asyncio.CancelledError:  # deadline passed or client went away: grpc cancels us
            state.code = _cancellation_code(context)
            self.chain.finish(state)
            raise
        except Exception as exc:
            await self._fail(state, exc, context)  # raises
        if self.finish_returned(state, context) and not writes_responses:
            state.response = response
            self.chain.message(state, False)
        self.chain.finish(state)
        return response

    def _stream_response(
        self, behavior: Callable[..., Any], info: MethodInfo, streaming_in: bool
    ) -> Callable[[Any, AioServingContext], AsyncIterator[Any]]:
        """The behaviour of an async-generator handler streaming responses. One async generator
        between grpc and the handler's: each layer costs every message an ``asend`` round trip
        (benchmarks/RESULTS.md, overhead: aio server streaming)."""
        chain = self.chain
        finish = chain.finish

        async def stream_response(request: Any, context: AioServingContext) -> AsyncIterator[Any]:
            state, request = await self._begin(info, streaming_in, request, context)
            message_hooks = info.message_hooks
            finished = False
            try:
                if request.__class__ is Undecodable:
                    await context.abort(grpc.StatusCode.INTERNAL, UNDECODABLE_DETAILS)
                async for response in behavior(request, _ServedContext(context, state, None)):
                    if message_hooks:
                        chain.message(state, False)
                    else:  # what chain.message does then, without a call per message
                        state.msgs_sent += 1
                    yield response
            except (GeneratorExit, asyncio.CancelledError):
                state.code = _cancellation_code(context)
                raise
            except Exception as exc:
                finished = True
                await self._fail(state, exc, context)  # raises
            else:
                self.finish_returned(state, context)
            finally:
                if not finished:
                    finish(state)

        return stream_response

    async def _fail(self, state: CallState, exc: Exception, context: AioServingContext) -> NoReturn:
        aborted = context.code() if isinstance(exc, grpc.aio.AbortError) else None
        if self.finish_failed(state, exc, aborted, context):
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_DETAILS)  # raises
        elif aborted is None:  # a status mapped from the exception (a downstream deadline): send it
            await context.abort(state.code, state.details or "")
        raise exc


def _cancellation_code(context: AioServingContext) -> grpc.StatusCode:
    left = context.time_remaining()
    if left is not None and left <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


async def _count_requests(
    requests: AsyncIterator[Any], state: CallState, chain: ConcernChain
) -> AsyncIterator[Any]:
    async for request in requests:
        chain.message(state, True)
        yield request


class _ServedContext:
    """The context handlers get: delegates to grpc's, with two differences. ``abort`` sends the
    status at once in grpc.aio, so it is where the details are bounded and a relayed refusal is
    marked (the sync adapter does both after the handler raised). With ``chain`` (streaming
    handlers that use ``await context.write()``), each write counts as a message sent."""

    __slots__ = ("_chain", "_context", "_state")

    def __init__(self, context: AioServingContext, state: CallState, chain: ConcernChain | None) -> None:
        self._context = context
        self._state = state
        self._chain = chain

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: MetadataPairs = ()
    ) -> NoReturn:
        relayed = self._state.relayed
        if relayed is not None and code != grpc.StatusCode.OK:
            trailing_metadata = relay_metadata(
                relayed, trailing_metadata or self._context.trailing_metadata()
            )
        await self._context.abort(
            code, bounded_details(details) if details else details, trailing_metadata
        )

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_details(self, details: str) -> None:
        # An abort without details sends these: bound them here too.
        self._context.set_details(bounded_details(details) if details else details)

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        if self._chain is not None:
            self._chain.message(self._state, False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)
