"""A grpc.aio channel whose calls run the client concern chain without grpc.aio's interceptor
machinery.

For each call through an interceptor, grpc.aio builds an intercepted call that runs the
interceptors in a task of their own, with futures and done-callbacks around it: about 50 Python
function calls per unary RPC on top of the chain's own (counted with ``sys.setprofile``), and on
streams a wrapper generator and queue per message (benchmarks/overhead.py, ``aio_bidi``: the
interceptor path added ~45 us of client CPU per message, the peer's too). Here each multicallable is
wrapped once, when a stub is built, and a call is grpc's own call plus the chain, finished in the
coroutine that awaits it or iterates it to its status (so a client span ends before the handler
that made the call returns), or, for a call nobody follows to its end, from its done-callback.
Behaviour matches :class:`AioClientInterceptor`'s (which it uses): deadlines, governance refusals
and fallbacks, retries of idempotent unary calls within the caller's timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import Any

import grpc
import grpc.aio
from grpc.aio import Metadata

from telemetry.governance.retry import RetryCall
from telemetry.rpc._client_common import CallerMetadata, WrappedMulticallable, wrapping_method
from telemetry.rpc.aio_calls import (
    AnsweredAioCall,
    BidiStreamCall,
    CallEnd,
    EndedOnAwait,
    FailedStreamCall,
    RefusedAioCall,
    ResponseStreamCall,
    maybe_count_sent,
    refusal_error,
)
from telemetry.rpc.aio_client import AioClientInterceptor
from telemetry.rpc.call import (
    AnswerCall,
    CallState,
    RejectCall,
    RpcKind,
    has_answer,
    retry_attempt,
)
from telemetry.rpc.retrying import retry_delay

_OK = grpc.StatusCode.OK


def to_send(state: CallState, metadata: CallerMetadata) -> CallerMetadata:
    """The metadata a call sends: the chain's (trace context ...) as grpc.aio's own Metadata, or
    else the caller's. A list would cost grpc.aio an isinstance check through typing's ABCs and a
    copy, ~8 Python calls a call."""
    outgoing = state.outgoing_metadata
    return Metadata(*outgoing) if outgoing else metadata


class _Multicallable(WrappedMulticallable[AioClientInterceptor]):
    __slots__ = ()


class _UnaryUnary(_Multicallable):
    """Unary-unary calls: each goes straight to grpc's multicallable."""

    __slots__ = ()

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: CallerMetadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        options = {
            "credentials": credentials,
            "wait_for_ready": wait_for_ready,
            "compression": compression,
        }
        try:
            state = self._runner.start_call(self._info, timeout, metadata, request)
        except AnswerCall as answer:
            return AnsweredAioCall(answer.response, answer.trailing_metadata)
        except RejectCall as reject:
            return RefusedAioCall(reject)
        try:
            inner = self._inner(request, timeout=state.timeout,
                                metadata=to_send(state, metadata), **options)  # fmt: skip
        except Exception as exc:  # a closed channel, bad metadata: the chain ends with the call
            _abandon(self._runner, state, exc)
            raise
        return UnaryCall(self, state, inner, request, timeout, metadata, options)


class UnaryCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    """The call a caller gets: grpc's call, finished into the chain when awaited (or, if nobody
    awaits it, when it is done). A governed call that fails may be retried here, each attempt
    its own traced call, within the caller's timeout counted from when the call was made. The
    first coroutine to await it runs the attempts; others awaiting meanwhile share its outcome.
    ``code()``, ``details()`` and the metadata speak for the last attempt, or for governance when
    it answered or refused instead of the server."""

    __slots__ = (
        "_answered", "_awaited", "_call", "_cancelled", "_give_up_at", "_multicallable",
        "_outcome", "_request", "_retry", "_shared", "_state",
    )  # fmt: skip

    def __init__(
        self, multicallable: _UnaryUnary, state: CallState, call: grpc.aio.UnaryUnaryCall[Any, Any],
        request: Any, timeout: float | None, metadata: CallerMetadata, options: dict[str, Any],
    ) -> None:  # fmt: skip
        self._multicallable = multicallable
        self._state = state
        self._call = call
        self._request = request
        self._retry = (timeout, metadata, options)
        # Only a governed channel retries: a plain call reads no clock for it.
        retries = multicallable._runner.retrier is not None
        self._give_up_at = time.monotonic() + timeout if retries and timeout is not None else None
        self._awaited = False  # once awaited, the awaiting coroutine finishes the chain
        self._cancelled = False  # cancel() was called: no further attempt
        # Governance's own outcome, when it answered (a fallback after the call failed) or refused
        # a retry instead of the server: code, details and trailing metadata are then its.
        self._answered: AnsweredAioCall | RefusedAioCall | None = None
        self._outcome: Any = None  # the answer once settled: a response, or a _Raised
        self._shared: asyncio.Future[Any] | None = None  # for awaiters beyond the first
        call.add_done_callback(self._done)  # finishes calls nobody awaits

    def __await__(self) -> Generator[Any, None, Any]:
        if not self._awaited and self._multicallable._runner.retrier is None:
            return self._await_once()
        return self._result().__await__()

    def _await_once(self) -> Generator[Any, None, Any]:
        """The first await of a call on a channel that does not retry: one attempt and its
        outcome, in one generator. :meth:`_result` and :meth:`_attempts` do the same through two
        coroutines, each a frame and an object per call on the path (benchmarks/RESULTS.md,
        overhead: aio unary)."""
        self._awaited = True
        state = self._state
        try:
            try:
                response = yield from self._call.__await__()
            except asyncio.CancelledError as cancelled:
                self._end(state, grpc.StatusCode.CANCELLED, None)
                self._outcome = _Raised(cancelled)  # a later await raises it again, as grpc's
                raise
            except grpc.aio.AioRpcError as error:
                self._fail(state, error)
                self._outcome = _Raised(error)
                raise
            except Exception as exc:  # not grpc's: the caller's interceptor, a closed channel
                self._end(state, grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
                self._outcome = _Raised(exc)
                raise
        except BaseException as exc:  # others awaiting meanwhile see it too
            if self._shared is not None and not self._shared.done():
                self._shared.set_exception(exc)
            raise
        if not state.finished:
            state.finished = True
            state.response = response
            state.code = _OK
            state.msgs_received = 1  # chain.message(state, True) for a unary call
            self._multicallable._runner.chain.finish(state)
        self._outcome = response
        if self._shared is not None and not self._shared.done():
            self._shared.set_result(response)
        return response

    async def _result(self) -> Any:
        outcome = self._outcome
        if outcome is None:
            if self._awaited:  # another coroutine runs the attempts: wait for its outcome
                if self._shared is None:
                    self._shared = asyncio.get_running_loop().create_future()
                outcome = await asyncio.shield(self._shared)
            else:
                self._awaited = True
                try:
                    outcome = self._outcome = await self._attempts()
                except BaseException as exc:  # cancelled, or an unexpected error: others see it too
                    if isinstance(exc, (Exception, asyncio.CancelledError)):
                        self._outcome = _Raised(exc)  # and so does a later await, as grpc's
                    if self._shared is not None and not self._shared.done():
                        self._shared.set_exception(exc)
                    raise
                if self._shared is not None and not self._shared.done():
                    self._shared.set_result(outcome)
        if isinstance(outcome, _Raised):
            raise outcome.error
        return outcome

    async def _attempts(self) -> Any:
        """The call's answer: its response, or a _Raised. A failed attempt goes to a helper (a
        fallback's answer, or a retry): a call that succeeds first time calls none."""
        retrying: RetryCall | None = None  # made on the first failure
        while True:
            state = self._state
            try:
                response = await self._call
            except asyncio.CancelledError:
                self._end(state, grpc.StatusCode.CANCELLED, None)
                raise
            except grpc.aio.AioRpcError as error:
                outcome, retrying = await self._after_failure(state, error, retrying)
                if outcome is _AGAIN:  # the next attempt is made
                    continue
                return outcome
            except Exception as exc:  # not grpc's: the caller's interceptor, a closed channel
                self._end(state, grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
                raise
            if not state.finished:
                state.finished = True
                state.response = response
                state.code = _OK
                chain = self._multicallable._runner.chain
                chain.message(state, True)
                chain.finish(state)
            return response

    async def _after_failure(
        self, state: CallState, error: grpc.aio.AioRpcError, retrying: RetryCall | None
    ) -> tuple[Any, RetryCall | None]:
        """The attempt ``state`` failed with ``error``: the call's answer (a _Raised, or a
        fallback's response), or _AGAIN once the next attempt is made after the backoff; and the
        call's retry state."""
        self._fail(state, error)
        retrier = self._multicallable._runner.retrier
        if retrier is None or self._cancelled:
            return _Raised(error), retrying
        if has_answer(state):
            answer = state.answer
            return self._answer(AnsweredAioCall(answer.response, answer.trailing_metadata)), retrying
        planned = retry_delay(retrier, state, retrying, self._give_up_at)
        if planned is None:
            return _Raised(error), retrying
        retrying, delay = planned
        await asyncio.sleep(delay)
        # The caller's timeout, counted from when the call was made (None: it gave none).
        timeout = None if self._give_up_at is None else retrying.remaining()
        if self._cancelled or (timeout is not None and timeout <= 0):  # or the sleep overshot
            return _Raised(error), retrying
        answered = self._again(timeout)
        return (_AGAIN if answered is None else answered), retrying

    def _again(self, timeout: float | None) -> Any:
        """Start the next attempt: None, or what to return instead (governance answered or
        refused it)."""
        _, metadata, options = self._retry
        multicallable = self._multicallable
        token = retry_attempt.set(True)
        try:
            state = multicallable._runner.start_call(multicallable._info, timeout, metadata,
                                                     self._request)  # fmt: skip
        except AnswerCall as answer:
            return self._answer(AnsweredAioCall(answer.response, answer.trailing_metadata))
        except RejectCall as reject:
            refused = RefusedAioCall(reject)
            self._answered = refused
            return _Raised(refused._error)
        finally:
            retry_attempt.reset(token)
        try:
            call = multicallable._inner(self._request, timeout=state.timeout,
                                        metadata=to_send(state, metadata), **options)  # fmt: skip
        except Exception as exc:  # the channel closed meanwhile, say
            self._end(state, grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
            raise
        self._state, self._call = state, call
        call.add_done_callback(self._done)
        return None

    def _answer(self, answered: AnsweredAioCall) -> Any:
        """The answer's response; the call's code, details and metadata are the answer's."""
        self._answered = answered
        return answered._response

    def _end(self, state: CallState, code: grpc.StatusCode, details: str | None) -> None:
        if state.finished:
            return
        state.finished = True
        state.code = code
        if details is not None:
            state.details = details
        self._multicallable._runner.chain.finish(state)

    def _fail(self, state: CallState, error: grpc.aio.AioRpcError) -> None:
        if state.finished:
            return
        state.finished = True
        state.trailing = error.trailing_metadata() or ()  # governance reads refusal marks in it
        self._multicallable._runner.end_call(state, error.code(), error.details())

    def _done(self, call: object) -> None:
        """grpc's done-callback (it runs before the awaiting coroutine resumes): finishes a call
        nobody awaits, off the caller's path."""
        if self._awaited or self._state.finished or call is not self._call:
            return
        task = asyncio.get_running_loop().create_task(self._finish_unawaited(call, self._state))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _finish_unawaited(self, call: grpc.aio.UnaryUnaryCall[Any, Any], state: CallState) -> None:
        code = await call.code()
        if state.finished:
            return
        runner = self._multicallable._runner
        if code == _OK:
            state.response = await call  # done: at once (a last-good cache remembers it)
            if not state.finished:
                state.finished = True
                runner.end_call(state, None, None)
            return
        trailing = await call.trailing_metadata() or ()
        details = await call.details()
        if not state.finished:
            state.finished = True
            state.trailing = trailing
            runner.end_call(state, code, details)

    # -- the rest of grpc.aio's call interface: the current attempt's ------------------------------

    def cancel(self) -> bool:
        self._cancelled = True  # also stops a retry waiting out its backoff
        return bool(self._call.cancel())

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def done(self) -> bool:
        return self._outcome is not None or (bool(self._call.done()) and not self._awaited)

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _call: callback(self))

    async def initial_metadata(self) -> Metadata:
        if self._answered is not None:
            return await self._answered.initial_metadata()
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Metadata:
        if self._answered is not None:
            return await self._answered.trailing_metadata()
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        if self._answered is not None:
            return await self._answered.code()
        return await self._call.code()

    async def details(self) -> str:
        if self._answered is not None:
            return await self._answered.details()
        return await self._call.details()

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()

    async def debug_error_string(self) -> str | None:
        # A coroutine, as grpc.aio's calls have it (types-grpcio leaves it off their classes).
        debug: str | None = await self._call.debug_error_string()  # type: ignore[attr-defined]
        return debug


class _Streaming(_Multicallable):
    """The streaming kinds: the call made counts the messages and finishes the chain where its
    status is seen."""

    __slots__ = ()

    def __call__(
        self,
        request: Any = None,
        *,
        timeout: float | None = None,
        metadata: CallerMetadata = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> grpc.aio.Call:
        runner, info = self._runner, self._info
        try:
            state = runner.start_call(info, timeout, metadata, request)
        except AnswerCall as answer:  # a fallback answers a single response, not a stream
            if info.streams_responses:
                return FailedStreamCall(refusal_error(answer))
            return AnsweredAioCall(answer.response, answer.trailing_metadata)
        except RejectCall as reject:  # a request stream refused still has write(), done_writing()
            return FailedStreamCall(refusal_error(reject))
        if info.streams_requests:
            request = maybe_count_sent(request, state, runner.chain)
        try:
            call = self._inner(
                request, timeout=state.timeout, metadata=to_send(state, metadata),
                credentials=credentials, wait_for_ready=wait_for_ready, compression=compression,
            )  # fmt: skip
        except Exception as exc:
            _abandon(runner, state, exc)
            raise
        end = CallEnd(runner, state, call)
        if info.streams_requests and info.streams_responses:
            return BidiStreamCall(call, end, state, runner)
        if info.streams_responses:
            return ResponseStreamCall(call, end, state, runner)
        return EndedOnAwait(call, end)


def _abandon(runner: AioClientInterceptor, state: CallState, exc: Exception) -> None:
    """grpc refused to make the call (a closed channel, bad metadata): the chain ends with it."""
    state.finished = True
    state.code = grpc.StatusCode.UNKNOWN
    state.details = f"{type(exc).__name__}: {exc}"
    runner.chain.finish(state)


# Strong references to finishing tasks, so they are not garbage-collected mid-flight.
_pending: set[asyncio.Task[None]] = set()


class _Raised:
    """An outcome to raise again on every await (grpc.aio calls answer each await the same)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# What UnaryCall._after_failure answers once it made the next attempt.
_AGAIN = object()


class InstrumentedAioChannel(grpc.aio.Channel):
    """``channel`` (a plain grpc.aio channel, or one with the caller's own interceptors, which run
    after the chain) with every call kind wrapped; the rest passes through to ``channel``."""

    def __init__(self, channel: grpc.aio.Channel, runner: AioClientInterceptor) -> None:
        self._channel = channel
        self._runner = runner

    unary_unary = wrapping_method("unary_unary", RpcKind.UNARY, _UnaryUnary)
    unary_stream = wrapping_method("unary_stream", RpcKind.SERVER_STREAM, _Streaming)
    stream_unary = wrapping_method("stream_unary", RpcKind.CLIENT_STREAM, _Streaming)
    stream_stream = wrapping_method("stream_stream", RpcKind.BIDI_STREAM, _Streaming)

    async def __aenter__(self) -> InstrumentedAioChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()
