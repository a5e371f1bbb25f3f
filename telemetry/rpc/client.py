"""Sync client adapter: one interceptor for all four kinds, for ``grpc.intercept_channel``."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from telemetry.rpc._client_common import ClientAdapterBase, SyncMetadata
from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall, RpcKind
from telemetry.rpc.concern import Concern, ConcernChain

if TYPE_CHECKING:
    # grpc.Future is generic in types-grpcio only (over the response).
    _Future = grpc.Future[Any]

    class _GrpcCall(grpc.Call, grpc.Future[Any], Iterator[Any]):
        """What grpc's sync calls are: a Call, a Future, the response iterator (and, failed, an
        RpcError: its trailing metadata typed as the Call's)."""

        def debug_error_string(self) -> str: ...
else:
    _Future = grpc.Future


# What grpc's interceptor path continues a call with: grpc's own call. The interceptors return
# it, or a call of their own that answers like one (Any: types-grpcio asks for its private
# _CallFuture / _CallIterator, which no class outside its stubs can be).
Continuation = Callable[[grpc.ClientCallDetails, Any], Any]
TrailingMetadata = tuple[tuple[str, str | bytes], ...]


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class ClientInterceptor(
    ClientAdapterBase,
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Runs ``concerns`` around every call made through an intercepted sync channel."""

    def __init__(self, concerns: Iterable[Concern], target: str = "") -> None:
        super().__init__(concerns, target)

    def intercept_unary_unary(
        self, continuation: Continuation, details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return self._call(continuation, details, request, RpcKind.UNARY)

    def intercept_unary_stream(
        self, continuation: Continuation, details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return self._call(continuation, details, request, RpcKind.SERVER_STREAM)

    def intercept_stream_unary(
        self, continuation: Continuation, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return self._call(continuation, details, requests, RpcKind.CLIENT_STREAM)

    def intercept_stream_stream(
        self, continuation: Continuation, details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return self._call(continuation, details, requests, RpcKind.BIDI_STREAM)

    def begin(
        self,
        info: MethodInfo,
        timeout: float | None,
        metadata: SyncMetadata,
        request: Any,
    ) -> tuple[CallState, Any]:
        """Start a call; returns its state and the request (a counting iterator for streams)."""
        state = self.start_call(info, timeout, metadata, request)
        if info.streams_requests:
            request = count_sent(request, state, self.chain)
        return state, request

    def _call(
        self,
        continuation: Continuation,
        details: grpc.ClientCallDetails,
        request: Any,
        kind: RpcKind,
    ) -> Any:
        try:
            state, request = self.begin(
                self.method_info(details.method, kind), details.timeout, details.metadata, request
            )
        except AnswerCall as answer:
            return AnsweredCall(answer.response, answer.trailing_metadata)
        except RejectCall as reject:
            return FailedCall(reject.code, reject.details, reject.trailing_metadata)
        new_details = _ClientCallDetails(
            details.method,
            state.timeout,
            state.outgoing_metadata or details.metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        try:
            call = continuation(new_details, request)
        except Exception as exc:  # grpc reports failures as calls; this is a bug below us
            state.code = grpc.StatusCode.UNKNOWN
            state.exception = exc
            self.chain.finish(state)
            raise
        call.add_done_callback(lambda finished: self.finish(state, finished))
        if state.info.streams_responses:
            return CountingResponses(call, state, self.chain)
        return call

    def finish(self, state: CallState, call: grpc.Call | grpc.RpcError) -> None:
        """Record how a call ended (``call`` is the grpc Call, or the RpcError it raised)."""
        code = call.code()
        if code is None or code == grpc.StatusCode.OK:
            self.end_call(state, code, None)
            return
        # Governance reads refusal marks in it. (types-grpcio: an RpcError's trailers are
        # _Metadatum objects; grpcio's are (key, value) named tuples, as a Call's.)
        state.trailing = call.trailing_metadata() or ()  # type: ignore[assignment]
        self.end_call(state, code, call.details())


def count_sent(requests: Iterable[Any], state: CallState, chain: ConcernChain) -> Iterator[Any]:
    for request in requests:
        chain.message(state, False)
        yield request


class _CallProxy(grpc.RpcError, grpc.Call, _Future):
    """Forwards the Call/Future interface to ``self._call``."""

    _call: _GrpcCall

    # Any: types-grpcio's RpcError and Call disagree on the type (see FailedCall).
    def initial_metadata(self) -> Any:
        return self._call.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()

    def code(self) -> grpc.StatusCode:
        return self._call.code()

    def details(self) -> str:
        return self._call.details()

    def is_active(self) -> bool:
        return bool(self._call.is_active())

    # grpc's calls answer None when they have no deadline; types-grpcio says float.
    def time_remaining(self) -> float | None:  # type: ignore[override]
        return self._call.time_remaining()

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return self._call.add_callback(callback)

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def running(self) -> bool:
        return bool(self._call.running())

    def done(self) -> bool:
        return bool(self._call.done())

    def result(self, timeout: float | None = None) -> Any:
        return self._call.result(timeout)

    def exception(self, timeout: float | None = None) -> Exception | None:
        return self._call.exception(timeout)

    def traceback(self, timeout: float | None = None) -> Any:
        return self._call.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _call: fn(self))

    def debug_error_string(self) -> str:
        return self._call.debug_error_string()

    def __str__(self) -> str:
        return str(self._call)


class CountingResponses(_CallProxy):
    """A response stream that counts messages received and is still the grpc call object."""

    def __init__(self, call: _GrpcCall, state: CallState, chain: ConcernChain) -> None:
        self._call = call
        self._state = state
        self._chain = chain

    def __iter__(self) -> CountingResponses:
        return self

    def __next__(self) -> Any:
        response = next(self._call)
        self._chain.message(self._state, True)
        return response


class _FinishedCall(grpc.Call, _Future):
    """A call that ended before it reached the network (the Call and Future of a finished call)."""

    _trailing: TrailingMetadata

    def initial_metadata(self) -> TrailingMetadata:
        return ()

    def trailing_metadata(self) -> TrailingMetadata:
        return self._trailing

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


class AnsweredCall(_FinishedCall):
    """A call answered by a fallback instead of the server: OK, with the fallback response."""

    def __init__(self, response: Any, trailing_metadata: TrailingMetadata = ()) -> None:
        self._response = response
        self._trailing = trailing_metadata

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> str:
        return ""

    def result(self, timeout: float | None = None) -> Any:
        return self._response

    def exception(self, timeout: float | None = None) -> None:
        return None

    def __str__(self) -> str:
        return f"<AnsweredCall response={self._response!r}>"


# types-grpcio types an RpcError's trailing_metadata() as _Metadatum objects, a Call's as (key,
# value) tuples; grpcio's failed calls are both, with named tuples (what this one returns).
class FailedCall(grpc.RpcError, _FinishedCall):  # type: ignore[misc]
    """A call refused before it reached the network (no deadline left, open breaker, ...).

    It is what grpc hands back for a failed call: an ``RpcError`` that is also the Call and Future,
    and an iterator that raises itself, so unary and streaming callers see the usual error.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: TrailingMetadata = ()
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._trailing = trailing_metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def debug_error_string(self) -> str:
        return f"refused locally by telemetry: {self._code.name}: {self._details}"

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> FailedCall:
        return self

    def __iter__(self) -> FailedCall:
        return self

    def __next__(self) -> Any:
        raise self

    def __str__(self) -> str:
        return f"<FailedCall code={self._code.name} details={self._details!r}>"
