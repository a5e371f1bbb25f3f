"""grpc.aio call objects of the instrumented client: what a caller awaits, iterates or reads.

A call's chain finishes exactly once (:class:`CallEnd`): from the coroutine that awaits its
response or iterates its responses, as soon as it sees the status, or else from the call's
done-callback. The wrappers subclass grpc.aio's own call types, so code that checks them
(``isinstance(call, grpc.aio.UnaryStreamCall)``) and done-callbacks see a grpc.aio call; what they
do not override is grpc's call's own (:class:`DelegatingCall`). Calls that never reach the network
(answered by a fallback, refused by governance, failed before sending) settle at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Generator, Iterable
from typing import Any, NoReturn, Protocol, TypeAlias

import grpc
import grpc.aio

from telemetry.rpc.call import CallState, RejectCall
from telemetry.rpc.concern import ConcernChain

Requests: TypeAlias = AsyncIterable[Any] | Iterable[Any] | None


class ChainRunner(Protocol):
    """The adapter a call reports to (the aio client interceptor)."""

    @property
    def chain(self) -> ConcernChain: ...

    def end_call(self, state: CallState, code: grpc.StatusCode | None, details: str | None) -> None: ...


# Strong references to finishing tasks, so they are not garbage-collected mid-flight.
_pending: set[asyncio.Task[None]] = set()
_OK = grpc.StatusCode.OK


class CallEnd:
    """Finishes the chain of one streaming call exactly once: from the coroutine that awaits its
    response or iterates its responses, as soon as it sees the status (the call's span then ends
    before that coroutine goes on, so before the handler that made the call returns), or else from
    the call's done-callback, for a call nobody follows to its end (cancelled, abandoned)."""

    __slots__ = ("_adapter", "_call", "_state", "ended")

    def __init__(self, adapter: ChainRunner, state: CallState, call: grpc.aio.Call) -> None:
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
        message_hooks = state.info.message_hooks
        try:
            async for response in call:
                if message_hooks:
                    chain.message(state, True)
                else:  # what chain.message does then, without a call per message
                    state.msgs_received += 1
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


def refusal_error(reject: RejectCall) -> grpc.aio.AioRpcError:
    """What awaiting or reading a call governance refused raises: its status and trailers."""
    return grpc.aio.AioRpcError(
        reject.code, grpc.aio.Metadata(), grpc.aio.Metadata(*reject.trailing_metadata), reject.details
    )


class RefusedAioCall(SettledAioCall, grpc.aio.UnaryUnaryCall[Any, Any]):
    """A call governance refused before it reached the network: awaiting it raises the refusal."""

    def __init__(self, reject: RejectCall) -> None:
        self._error = refusal_error(reject)
        self._trailing = self._error.trailing_metadata()

    def __await__(self) -> Generator[None, None, Any]:
        if False:  # pragma: no cover - makes this a generator without suspending
            yield
        raise self._error

    async def code(self) -> grpc.StatusCode:
        return self._error.code()

    async def details(self) -> str:
        return self._error.details() or ""

    async def wait_for_connection(self) -> None:
        raise self._error


class ResponseStreamCall(DelegatingCall, grpc.aio.UnaryStreamCall[Any, Any]):
    """A response-streaming call: its responses, read or iterated, counted; the read or the
    iteration that reaches the status finishes the chain. Everything else is grpc's call's own."""

    __slots__ = ("_call", "_end", "_runner", "_state")
    _call: grpc.aio.UnaryStreamCall[Any, Any] | grpc.aio.StreamStreamCall[Any, Any]

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[Any, Any] | grpc.aio.StreamStreamCall[Any, Any],
        end: CallEnd,
        state: CallState,
        runner: ChainRunner,
    ) -> None:
        self._call = call
        self._end = end
        self._state = state
        self._runner = runner

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._end.responses(self._call)

    async def read(self) -> Any:
        try:
            message = await self._call.read()
        except asyncio.CancelledError:
            self._end.end_cancelled()
            raise
        except grpc.aio.AioRpcError:
            await self._end.end()
            raise
        if message is grpc.aio.EOF:
            await self._end.end()
        else:
            self._runner.chain.message(self._state, True)
        return message


class BidiStreamCall(ResponseStreamCall, grpc.aio.StreamStreamCall[Any, Any]):
    """A bidirectional call: a response stream whose ``write`` counts what it sends."""

    __slots__ = ()
    _call: grpc.aio.StreamStreamCall[Any, Any]

    async def write(self, request: Any) -> None:
        await self._call.write(request)
        self._runner.chain.message(self._state, False)

    async def done_writing(self) -> None:
        await self._call.done_writing()
