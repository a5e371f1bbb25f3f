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
    Collection,
    Generator,
    Iterable,
)
from typing import Any, NoReturn, TypeAlias

import grpc
import grpc.aio

from telemetry.governance.retry import RetryCall
from telemetry.rpc._client_common import ClientAdapterBase
from telemetry.rpc.call import AnswerCall, CallState, RejectCall, RpcKind, has_answer, retry_attempt
from telemetry.rpc.concern import Concern, ConcernChain
from telemetry.rpc.retrying import retry_delay

# The request stream of a call: None when the caller writes with ``call.write()`` (grpc.aio
# passes None on to the continuation; types-grpcio does not say so).
Requests: TypeAlias = AsyncIterable[Any] | Iterable[Any] | None
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


# Strong references to finishing tasks, so they are not garbage-collected mid-flight.
_pending: set[asyncio.Task[None]] = set()
_OK = grpc.StatusCode.OK


class CallEnd:
    """Finishes the chain of one streaming call exactly once: from the coroutine that awaits its
    response or iterates its responses, as soon as it sees the status (the call's span then ends
    before that coroutine goes on, so before the handler that made the call returns), or else from
    the call's done-callback, for a call nobody follows to its end (cancelled, abandoned)."""

    __slots__ = ("_adapter", "_call", "_state", "ended")

    def __init__(self, adapter: AioClientInterceptor, state: CallState, call: grpc.aio.Call) -> None:
        self._adapter = adapter
        self._state = state
        self._call = call
        self.ended = False
        call.add_done_callback(self._when_done)

    async def end(self) -> None:
        """Finish with the call's status (the call is done, or this waits for it)."""
        call = self._call
        code = await call.code()
        details: str | None = None
        trailing: Collection[tuple[str, Any]] = ()
        if code != _OK:
            details, trailing = await call.details(), await call.trailing_metadata() or ()
        if self.ended:  # checked after the awaits: no other coroutine can step in from here on
            return
        self.ended = True
        if code != _OK:
            self._state.trailing = trailing  # governance reads refusal marks in it
        self._adapter.end_call(self._state, code, details)

    def sent(self) -> None:
        self._adapter.chain.message(self._state, False)

    def end_cancelled(self) -> None:
        """The awaiting coroutine was cancelled (grpc.aio cancels the call with it)."""
        if not self.ended:
            self.ended = True
            self._state.code = grpc.StatusCode.CANCELLED
            self._adapter.chain.finish(self._state)

    def _when_done(self, _call: object) -> None:
        # The status arrives before the caller's iteration or await sees it: decide on the next
        # turn of the loop, by when the caller has usually finished the call itself.
        if not self.ended:  # grpc runs done-callbacks on the call's loop
            asyncio.get_running_loop().call_soon(self._fallback)

    def _fallback(self) -> None:
        if not self.ended:
            task = asyncio.get_running_loop().create_task(self.end())
            _pending.add(task)
            task.add_done_callback(_pending.discard)

    async def responses(self, call: AsyncIterable[Any]) -> AsyncIterator[Any]:
        """The responses of the call (``call``, the one this ends), counted; the iteration that
        reaches the status finishes it."""
        chain, state = self._adapter.chain, self._state
        try:
            async for response in call:
                chain.message(state, True)
                yield response
        except asyncio.CancelledError:
            self.end_cancelled()
            raise
        except grpc.aio.AioRpcError:  # the status, raised by the iteration
            await self.end()
            raise
        await self.end()


class DelegatingCall:
    """The grpc.aio ``Call`` methods of a wrapper, answered by the call it wraps (``_call``), except
    that a done-callback gets the wrapper, as grpc's calls pass themselves; anything else (grpc.aio
    reads private attributes of what an interceptor returns) is the wrapped call's too. A mixin:
    put it before the grpc.aio call classes it completes."""

    __slots__ = ()
    _call: grpc.aio.Call

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()

    async def details(self) -> str:
        return await self._call.details()

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def done(self) -> bool:
        return bool(self._call.done())

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _call: callback(self))

    def __getattr__(self, name: str) -> Any:
        if name == "_call":  # not set yet: no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self._call, name)


class EndedOnAwait(DelegatingCall, grpc.aio.StreamUnaryCall[Any, Any]):
    """A request-stream call whose single response, when awaited, finishes the chain in the
    awaiting coroutine; everything else is the call's own."""

    __slots__ = ("_call", "_end")
    _call: grpc.aio.StreamUnaryCall[Any, Any]

    def __init__(self, call: grpc.aio.StreamUnaryCall[Any, Any], end: CallEnd) -> None:
        self._call = call
        self._end = end

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            response = yield from self._call.__await__()
        except asyncio.CancelledError:
            self._end.end_cancelled()
            raise
        except grpc.aio.AioRpcError:
            yield from self._end.end().__await__()
            raise
        yield from self._end.end().__await__()
        return response

    async def write(self, request: Any) -> None:
        """``call.write()`` style (no request iterator given): each message counted as sent."""
        await self._call.write(request)
        self._end.sent()

    async def done_writing(self) -> None:
        await self._call.done_writing()


def maybe_count_sent(
    requests: Requests, state: CallState, chain: ConcernChain
) -> AsyncIterator[Any] | None:
    # None means the caller uses call.write(); grpc must still see None to allow that style.
    return None if requests is None else _count_sent(requests, state, chain)


async def _count_sent(
    requests: AsyncIterable[Any] | Iterable[Any], state: CallState, chain: ConcernChain
) -> AsyncIterator[Any]:
    if hasattr(requests, "__aiter__"):
        async for request in requests:
            chain.message(state, False)
            yield request
    else:
        for request in requests:
            chain.message(state, False)
            yield request


class SettledAioCall:
    """What a grpc.aio call that ended without reaching the network answers like any other: no
    initial metadata, ``_trailing`` as trailers, nothing to cancel, done at once. A mixin: put it
    before the grpc.aio call classes it completes."""

    _trailing: grpc.aio.Metadata

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return self._trailing

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def time_remaining(self) -> float | None:
        return None

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)


class AnsweredAioCall(SettledAioCall, grpc.aio.UnaryUnaryCall[Any, Any]):
    """A grpc.aio unary call answered by a fallback instead of the server: awaiting it gives the
    response; code OK; ``trailing_metadata()`` says it was a fallback (``x-governance``), as for
    sync calls. (grpc.aio would wrap a bare response in a call with no metadata at all.)"""

    def __init__(self, response: Any, trailing_metadata: Iterable[tuple[str, str | bytes]] = ()) -> None:
        self._response = response
        self._trailing = grpc.aio.Metadata(*trailing_metadata)

    def __await__(self) -> Generator[None, None, Any]:
        if False:  # pragma: no cover - makes this a generator without suspending
            yield
        return self._response

    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    async def details(self) -> str:
        return ""

    async def wait_for_connection(self) -> None:
        return None


class FailedStreamCall(
    SettledAioCall,
    grpc.aio.UnaryStreamCall[Any, Any],
    grpc.aio.StreamUnaryCall[Any, Any],
    grpc.aio.StreamStreamCall[Any, Any],
):
    """A streaming call that ended with ``error`` before it reached the network (refused by
    governance, no instance to send it to), answering as grpc.aio's finished calls do: reading,
    iterating or awaiting it raises the error, writing raises ``asyncio.InvalidStateError``,
    ``done_writing()`` does nothing."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self._error = error
        self._trailing = error.trailing_metadata()

    async def _fail(self) -> NoReturn:
        raise self._error

    def __await__(self) -> Generator[Any, None, NoReturn]:
        return self._fail().__await__()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> NoReturn:
        raise self._error

    async def read(self) -> NoReturn:
        raise self._error

    async def write(self, request: Any) -> None:
        raise asyncio.InvalidStateError("the call was finished before it started")

    async def done_writing(self) -> None:
        return None

    async def wait_for_connection(self) -> None:
        raise self._error

    async def code(self) -> grpc.StatusCode:
        return self._error.code()

    async def details(self) -> str:
        return str(self._error.details() or "")
