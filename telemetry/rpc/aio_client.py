"""grpc.aio client adapter: the same concern chain, for ``grpc.aio.*_channel(interceptors=...)``.

grpc.aio files each interceptor under the first RPC kind it implements, so one object cannot serve all
four: pass ``AioClientInterceptor(...).split()``, four per-kind facades over one adapter.

A call's chain finishes (its CLIENT span ends) in the coroutine that made the call, the moment that
coroutine learns the status, so the span of a call made by a handler ends before the handler returns
(a span ending after its parent breaks trace waterfalls). Unary-response calls with a single request
are awaited inside the interceptor, whose task the caller awaits. Calls with a request stream cannot
be (a caller using ``call.write()`` waits for the interceptor): the interceptor returns the call
wrapped so that awaiting its response finishes it. Response streams finish when the caller's
iteration reaches the status. A done-callback remains for calls nobody follows to their end
(cancelled, abandoned): whichever comes first finishes the call, once (:class:`CallEnd`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import Any, TypeAlias

import grpc
import grpc.aio

from telemetry.governance.retry import RetryCall
from telemetry.rpc._client_common import ClientAdapterBase
from telemetry.rpc.aio_calls import AnsweredAioCall, CallEnd, EndedOnAwait, Requests, maybe_count_sent
from telemetry.rpc.call import AnswerCall, CallState, RejectCall, RpcKind, has_answer, retry_attempt
from telemetry.rpc.concern import Concern
from telemetry.rpc.retrying import retry_delay

# The request stream of a call: None when the caller writes with ``call.write()`` (grpc.aio
# passes None on to the continuation; types-grpcio does not say so).
# What grpc.aio continues an intercepted call with, one per kind: the call it makes.
UnaryContinuation: TypeAlias = Callable[
    [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]
]
ResponseStreamContinuation: TypeAlias = Callable[
    [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]
]
RequestStreamContinuation: TypeAlias = Callable[
    [grpc.aio.ClientCallDetails, AsyncIterable[Any] | Iterable[Any]],
    Awaitable[grpc.aio.StreamUnaryCall[Any, Any]],
]
BidiContinuation: TypeAlias = Callable[
    [grpc.aio.ClientCallDetails, AsyncIterable[Any] | Iterable[Any]],
    Awaitable[grpc.aio.StreamStreamCall[Any, Any]],
]


class AioClientInterceptor(
    ClientAdapterBase,
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Runs ``concerns`` around every call made through a ``grpc.aio`` channel (see ``split``)."""

    def __init__(self, concerns: Iterable[Concern], target: str = "") -> None:
        super().__init__(concerns, target)

    def split(self) -> list[grpc.aio.ClientInterceptor]:
        """One interceptor per RPC kind, all delegating here: what ``grpc.aio`` channels need."""
        return [
            _UnaryUnary(self),
            _UnaryStream(self),
            _StreamUnary(self),
            _StreamStream(self),
        ]

    async def intercept_unary_unary(
        self, continuation: UnaryContinuation, details: grpc.aio.ClientCallDetails, request: Any
    ) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        """Returns the call, or a fallback's answer as a call. The rare turns (an answer, a
        retry) are helpers: a call that succeeds first time calls none."""
        give_up_at = None if details.timeout is None else time.monotonic() + details.timeout
        retrying: RetryCall | None = None  # made on the first failure
        while True:
            try:
                if retrying is None:
                    state, new_details = self._begin(details, RpcKind.UNARY, request)
                else:
                    state, new_details = self._begin_retry(details, request)
            except AnswerCall as answer:
                return AnsweredAioCall(answer.response, answer.trailing_metadata)
            call = await continuation(new_details, request)
            try:
                response = await call
            except asyncio.CancelledError:
                state.code = grpc.StatusCode.CANCELLED
                self.chain.finish(state)
                raise
            except grpc.aio.AioRpcError:
                response = None  # the status is read below; the caller sees the error on await
            state.response = response
            await self._finish(state, call)
            if state.code == grpc.StatusCode.OK:
                return call
            after = await self._after_failure(state, call, retrying, give_up_at)
            if not isinstance(after, tuple):
                return after
            retrying, left = after
            details = grpc.aio.ClientCallDetails(
                details.method, left, details.metadata, details.credentials, details.wait_for_ready
            )

    def _begin_retry(
        self, details: grpc.aio.ClientCallDetails, request: Any
    ) -> tuple[CallState, grpc.aio.ClientCallDetails]:
        """Start a retry of a unary call (retry budgets count first attempts only)."""
        token = retry_attempt.set(True)
        try:
            return self._begin(details, RpcKind.UNARY, request)
        finally:
            retry_attempt.reset(token)

    async def _after_failure(
        self,
        state: CallState,
        call: grpc.aio.UnaryUnaryCall[Any, Any],
        retrying: RetryCall | None,
        give_up_at: float | None,
    ) -> grpc.aio.UnaryUnaryCall[Any, Any] | tuple[RetryCall, float | None]:
        """After the failed attempt ``call``: what the caller gets (the call, or a fallback's
        answer), or, once the backoff is waited out, the retry state and the timeout of the
        next attempt (None: the caller gave none)."""
        retrier = self.retrier
        if retrier is None:
            return call
        if has_answer(state):
            return AnsweredAioCall(state.answer.response, state.answer.trailing_metadata)
        planned = retry_delay(retrier, state, retrying, give_up_at)
        if planned is None:
            return call
        retrying, delay = planned
        await asyncio.sleep(delay)
        if give_up_at is None:
            return retrying, None
        left = retrying.remaining()
        if left is not None and left <= 0:  # the sleep overshot the caller's timeout
            return call
        return retrying, left

    async def intercept_unary_stream(
        self,
        continuation: ResponseStreamContinuation,
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> AsyncIterator[Any]:
        state, new_details = self._begin(details, RpcKind.SERVER_STREAM, request)
        call = await continuation(new_details, request)
        return CallEnd(self, state, call).responses(call)

    async def intercept_stream_unary(
        self,
        continuation: RequestStreamContinuation,
        details: grpc.aio.ClientCallDetails,
        requests: Requests,
    ) -> grpc.aio.StreamUnaryCall[Any, Any]:
        state, new_details = self._begin(details, RpcKind.CLIENT_STREAM, requests)
        sent = maybe_count_sent(requests, state, self.chain)
        call = await continuation(new_details, sent)  # type: ignore[arg-type]  # None: see Requests
        return EndedOnAwait(call, CallEnd(self, state, call))

    async def intercept_stream_stream(
        self,
        continuation: BidiContinuation,
        details: grpc.aio.ClientCallDetails,
        requests: Requests,
    ) -> AsyncIterator[Any]:
        state, new_details = self._begin(details, RpcKind.BIDI_STREAM, requests)
        sent = maybe_count_sent(requests, state, self.chain)
        call = await continuation(new_details, sent)  # type: ignore[arg-type]  # None: see Requests
        return CallEnd(self, state, call).responses(call)

    def _begin(
        self, details: grpc.aio.ClientCallDetails, kind: RpcKind, request: Any
    ) -> tuple[CallState, grpc.aio.ClientCallDetails]:
        try:
            info = self.method_info(details.method, kind)
            state = self.start_call(info, details.timeout, details.metadata, request)
        except AnswerCall:
            raise
        except RejectCall as reject:
            raise grpc.aio.AioRpcError(
                reject.code,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(*reject.trailing_metadata),
                reject.details,
            ) from None
        new_details = grpc.aio.ClientCallDetails(
            details.method,
            state.timeout,
            # A list of pairs where types-grpcio says Metadata: grpc.aio only makes a tuple of
            # it, and a Metadata would cost Python calls per pair to build and to iterate.
            state.outgoing_metadata or details.metadata,  # type: ignore[arg-type]
            details.credentials,
            details.wait_for_ready,
        )
        return state, new_details

    async def _finish(self, state: CallState, call: grpc.aio.Call) -> None:
        code = await call.code()
        if code == grpc.StatusCode.OK:
            self.end_call(state, code, None)
            return
        state.trailing = await call.trailing_metadata() or ()  # governance reads refusal marks in it
        self.end_call(state, code, await call.details())


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, core: AioClientInterceptor) -> None:
        self._core = core

    async def intercept_unary_unary(
        self, continuation: UnaryContinuation, details: grpc.aio.ClientCallDetails, request: Any
    ) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        return await self._core.intercept_unary_unary(continuation, details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, core: AioClientInterceptor) -> None:
        self._core = core

    async def intercept_unary_stream(
        self,
        continuation: ResponseStreamContinuation,
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> AsyncIterator[Any]:
        return await self._core.intercept_unary_stream(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, core: AioClientInterceptor) -> None:
        self._core = core

    async def intercept_stream_unary(
        self,
        continuation: RequestStreamContinuation,
        details: grpc.aio.ClientCallDetails,
        requests: Requests,
    ) -> grpc.aio.StreamUnaryCall[Any, Any]:
        return await self._core.intercept_stream_unary(continuation, details, requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, core: AioClientInterceptor) -> None:
        self._core = core

    async def intercept_stream_stream(
        self,
        continuation: BidiContinuation,
        details: grpc.aio.ClientCallDetails,
        requests: Requests,
    ) -> AsyncIterator[Any]:
        return await self._core.intercept_stream_stream(continuation, details, requests)
