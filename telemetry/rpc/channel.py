"""A sync channel that runs the client concern chain without grpc's interceptor machinery.

``grpc.intercept_channel`` builds a new multicallable, details tuple and closures on every call
(creating the multicallable alone costs ~4.5 us). Here each multicallable is wrapped once, when a
stub is built, with its method info resolved; a call goes straight to grpc's own multicallable.
Behaviour matches :class:`~telemetry.rpc.client.ClientInterceptor`, whose runner it shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import grpc

from telemetry.governance.retry import RetryCall
from telemetry.rpc._client_common import SyncMetadata, WrappedMulticallable, wrapping_method
from telemetry.rpc.call import (
    AnswerCall,
    CallState,
    RejectCall,
    RpcKind,
    has_answer,
    retry_attempt,
)
from telemetry.rpc.client import AnsweredCall, ClientInterceptor, CountingResponses, FailedCall
from telemetry.rpc.retrying import retry_delay


class _Multicallable(WrappedMulticallable[ClientInterceptor]):
    __slots__ = ()

    def _launch(
        self,
        invoke: Callable[..., Any],
        request: Any,
        timeout: float | None,
        metadata: SyncMetadata,
        options: dict[str, Any],
    ) -> tuple[CallState | None, Any]:
        """Start a non-blocking call (future or stream); the chain finishes when it is done.
        A refused call comes back as a FailedCall with no state."""
        runner = self._runner
        try:
            state, request = runner.begin(self._info, timeout, metadata, request)
        except AnswerCall as answer:
            return None, AnsweredCall(answer.response, answer.trailing_metadata)
        except RejectCall as reject:
            return None, FailedCall(reject.code, reject.details, reject.trailing_metadata)
        call = invoke(
            request, timeout=state.timeout, metadata=state.outgoing_metadata or metadata, **options
        )
        call.add_done_callback(lambda done: runner.finish(state, done))
        return state, call


class _UnaryResponse(_Multicallable):
    """Unary and client-stream calls: call, with_call, future."""

    __slots__ = ()

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: SyncMetadata = None, **options: Any
    ) -> Any:
        runner = self._runner
        if runner.retrier is not None:
            return self._governed_call(request, timeout, metadata, options)[0]
        info = self._info
        if info.streams_requests:
            state, request = self._begin(request, timeout, metadata)
        else:
            # runner.begin and end_call folded in for the usual unary call: each function layer
            # costs ~1 us on the cold interpreter a live process runs (benchmarks/RESULTS.md).
            state = CallState(info, perf_counter(), metadata, "")
            state.target = runner.target
            state.timeout = timeout
            state.request = request
            try:
                runner.chain.start(state)
            except RejectCall as reject:
                raise FailedCall(reject.code, reject.details, reject.trailing_metadata) from None
            state.msgs_sent = 1
        try:
            # grpc's plain call, not with_call: no Call object to build and ask for its code.
            response = self._inner(
                request, timeout=state.timeout, metadata=state.outgoing_metadata or metadata, **options
            )
        except grpc.RpcError as error:  # the error is also the finished Call
            runner.finish(state, error)
            raise
        if info.streams_requests:
            runner.end_call(state, None, None)  # it returned: OK
        else:
            state.msgs_received = 1
            runner.chain.finish(state)
        return response

    def with_call(
        self, request: Any, timeout: float | None = None, metadata: SyncMetadata = None, **options: Any
    ) -> tuple[Any, grpc.Call]:
        runner = self._runner
        if runner.retrier is not None:
            return self._governed_call(request, timeout, metadata, options)
        state, request = self._begin(request, timeout, metadata)
        try:
            response, call = self._inner.with_call(
                request, timeout=state.timeout, metadata=state.outgoing_metadata or metadata, **options
            )
        except grpc.RpcError as error:  # the error is also the finished Call
            runner.finish(state, error)
            raise
        runner.finish(state, call)
        return response, call

    def _begin(
        self, request: Any, timeout: float | None, metadata: SyncMetadata
    ) -> tuple[CallState, Any]:
        try:
            return self._runner.begin(self._info, timeout, metadata, request)
        except RejectCall as reject:
            raise FailedCall(reject.code, reject.details, reject.trailing_metadata) from None

    def _governed_call(
        self, request: Any, timeout: float | None, metadata: SyncMetadata, options: dict[str, Any]
    ) -> tuple[Any, grpc.Call]:
        """with_call under governance: a fallback may answer, a failed idempotent call may be
        retried (each attempt is its own traced call) within the caller's timeout. The rare
        turns (a refusal, a retry) are helpers: a call that succeeds first time calls none."""
        runner = self._runner
        give_up_at = None if timeout is None else time.monotonic() + timeout
        retrying: RetryCall | None = None  # made on the first failure
        while True:
            try:
                if retrying is None:
                    state, sent = runner.begin(self._info, timeout, metadata, request)
                else:
                    state, sent = self._begin_retry(request, timeout, metadata)
            except RejectCall as reject:  # refused, or answered (an AnswerCall)
                return _answered_or_failed(reject)
            try:
                response, call = self._inner.with_call(
                    sent, timeout=state.timeout, metadata=state.outgoing_metadata or metadata, **options
                )
            except grpc.RpcError as error:
                runner.finish(state, error)
                if has_answer(state):
                    found = state.answer
                    return found.response, AnsweredCall(found.response, found.trailing_metadata)
                retrying, timeout = self._backoff(state, retrying, give_up_at)  # or raises `error`
                continue
            state.response = response
            runner.finish(state, call)
            return response, call

    def _begin_retry(
        self, request: Any, timeout: float | None, metadata: SyncMetadata
    ) -> tuple[CallState, Any]:
        """Start a retry (retry budgets count first attempts only)."""
        token = retry_attempt.set(True)
        try:
            return self._runner.begin(self._info, timeout, metadata, request)
        finally:
            retry_attempt.reset(token)

    def _backoff(
        self, state: CallState, retrying: RetryCall | None, give_up_at: float | None
    ) -> tuple[RetryCall, float | None]:
        """After the failed attempt ``state`` (its RpcError being handled): wait out the backoff
        and return the retry state and the timeout left for the next attempt, or re-raise the
        error when the call is not retried."""
        retrier = self._runner.retrier
        planned = None if retrier is None else retry_delay(retrier, state, retrying, give_up_at)
        if planned is None:
            raise  # noqa: PLE0704 - the caller's RpcError, being handled
        retrying, delay = planned
        time.sleep(delay)
        timeout = retrying.remaining()
        if timeout is not None and timeout <= 0:  # the sleep overshot the caller's timeout
            raise  # noqa: PLE0704
        return retrying, timeout

    def future(
        self, request: Any, timeout: float | None = None, metadata: SyncMetadata = None, **options: Any
    ) -> Any:
        return self._launch(self._inner.future, request, timeout, metadata, options)[1]


class _Streaming(_Multicallable):
    """Server-stream and bidi calls: the returned call also counts the messages received."""

    __slots__ = ()

    def __call__(
        self, request: Any, timeout: float | None = None, metadata: SyncMetadata = None, **options: Any
    ) -> Any:
        state, call = self._launch(self._inner, request, timeout, metadata, options)
        return call if state is None else CountingResponses(call, state, self._runner.chain)


def _answered_or_failed(reject: RejectCall) -> tuple[Any, AnsweredCall]:
    """A governed call governance answered (a fallback) or refused (raised as a FailedCall)."""
    if isinstance(reject, AnswerCall):
        return reject.response, AnsweredCall(reject.response, reject.trailing_metadata)
    raise FailedCall(reject.code, reject.details, reject.trailing_metadata) from None


class InstrumentedChannel(grpc.Channel):
    """``credentials``, ``wait_for_ready`` and ``compression`` pass through to grpc unchanged."""

    def __init__(self, channel: grpc.Channel, runner: ClientInterceptor) -> None:
        self._channel = channel
        self._runner = runner

    unary_unary = wrapping_method("unary_unary", RpcKind.UNARY, _UnaryResponse)
    unary_stream = wrapping_method("unary_stream", RpcKind.SERVER_STREAM, _Streaming)
    stream_unary = wrapping_method("stream_unary", RpcKind.CLIENT_STREAM, _UnaryResponse)
    stream_stream = wrapping_method("stream_stream", RpcKind.BIDI_STREAM, _Streaming)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        self._channel.unsubscribe(callback)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> InstrumentedChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()
