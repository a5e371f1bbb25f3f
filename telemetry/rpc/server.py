"""Sync server adapter: one ``grpc.ServerInterceptor`` running a concern chain for all four kinds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from telemetry.rpc._server_common import (
    INTERNAL_ERROR_DETAILS,
    UNDECODABLE_DETAILS,
    ServerAdapterBase,
    SyncServingContext,
    Undecodable,
    new_handler,
    original_behavior,
)
from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall
from telemetry.rpc.concern import Concern

if TYPE_CHECKING:
    from telemetry.rpc._server_common import Handler


class ServerInterceptor(ServerAdapterBase, grpc.ServerInterceptor):
    """Runs ``concerns`` around every RPC of a sync ``grpc.Server``."""

    def __init__(self, concerns: Iterable[Concern]) -> None:
        super().__init__(concerns)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        return self.wrapped_handler(continuation(handler_call_details), handler_call_details.method)

    def wrap(self, handler: Handler, info: MethodInfo) -> Handler:
        behavior = original_behavior(handler, info.kind)
        streaming_in = handler.request_streaming
        if handler.response_streaming:

            def stream_response(request: Any, context: SyncServingContext) -> Iterator[Any]:
                return self._stream_response(behavior, info, streaming_in, request, context)

            return new_handler(handler, info.kind, stream_response)

        if not streaming_in:
            return new_handler(handler, info.kind, self._unary(behavior, info))

        def stream_request(requests: Iterator[Any], context: SyncServingContext) -> Any:
            return self._stream_request(behavior, info, requests, context)

        return new_handler(handler, info.kind, stream_request)

    def _unary(
        self, behavior: Callable[..., Any], info: MethodInfo
    ) -> Callable[[Any, SyncServingContext], Any]:
        """The unary behaviour: _begin, the handler and finish_returned, in one function.
        Every call runs it, between grpc's C work, on a cold interpreter: each function layer
        costs ~1 us there, so the layers are folded in (benchmarks/RESULTS.md, overhead)."""
        chain = self.chain
        start, finish = chain.start, chain.finish
        finish_returned = self.finish_returned
        ok = grpc.StatusCode.OK

        def unary(request: Any, context: SyncServingContext) -> Any:
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
                context.abort(reject.code, reject.details)  # raises
            state.msgs_received = 1
            try:
                if request.__class__ is Undecodable:
                    context.abort(grpc.StatusCode.INTERNAL, UNDECODABLE_DETAILS)  # raises
                response = behavior(request, context)
            except Exception as exc:
                self._fail(state, exc, context)  # raises
            code = context.code()
            if code is None or code is ok:
                state.response = response
                state.msgs_sent = 1
            else:  # a status the handler set without raising
                finish_returned(state, context)
            finish(state)
            return response

        return unary

    def _begin(
        self, info: MethodInfo, streaming_in: bool, request: Any, context: SyncServingContext
    ) -> CallState:
        """Start the call; raises AnswerCall when a concern answers it, aborts when one refuses."""
        try:
            state = self.start_call(info, context, None if streaming_in else request)
        except AnswerCall:
            raise
        except RejectCall as reject:
            context.abort(reject.code, reject.details)  # raises
        if not streaming_in:
            self.chain.message(state, True)
        return state

    def _stream_request(
        self,
        behavior: Callable[..., Any],
        info: MethodInfo,
        requests: Iterator[Any],
        context: SyncServingContext,
    ) -> Any:
        """A request stream, one response (unary calls take :meth:`_unary`)."""
        try:
            state = self._begin(info, True, requests, context)
        except AnswerCall as answer:  # a fallback stands in for the handler
            return answer.response
        try:
            response = behavior(self._count_requests(requests, state), context)
        except Exception as exc:
            self._fail(state, exc, context)  # raises
        if self.finish_returned(state, context):
            state.response = response
            self.chain.message(state, False)
        self.chain.finish(state)
        return response

    def _stream_response(
        self,
        behavior: Callable[..., Any],
        info: MethodInfo,
        streaming_in: bool,
        request: Any,
        context: SyncServingContext,
    ) -> Iterator[Any]:
        state = self._begin(info, streaming_in, request, context)
        if streaming_in:
            request = self._count_requests(request, state)
        finished = False
        try:
            if request.__class__ is Undecodable:
                context.abort(grpc.StatusCode.INTERNAL, UNDECODABLE_DETAILS)  # raises
            for response in behavior(request, context):
                self.chain.message(state, False)
                yield response
        except GeneratorExit:  # grpc stopped iterating: the client went away
            state.code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            finished = True
            self._fail(state, exc, context)  # raises
        else:
            self.finish_returned(state, context)
        finally:
            if not finished:
                self.chain.finish(state)

    def _count_requests(self, requests: Iterator[Any], state: CallState) -> Iterator[Any]:
        for request in requests:
            self.chain.message(state, True)
            yield request

    def _fail(self, state: CallState, exc: Exception, context: SyncServingContext) -> NoReturn:
        aborted = _aborted_code(exc, context)
        if self.finish_failed(state, exc, aborted, context):
            context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR_DETAILS)  # raises
        elif aborted is None:  # a status mapped from the exception (a downstream deadline): send it
            context.abort(state.code, state.details or "")
        raise exc


def _aborted_code(exc: Exception, context: SyncServingContext) -> grpc.StatusCode | None:
    """The status set by ``context.abort`` when ``exc`` is the exception abort raised, else None."""
    rpc_state = getattr(context, "_state", None)
    aborted = getattr(rpc_state, "aborted", None)
    if aborted is None:  # private attribute gone: abort raises a bare Exception()
        aborted = type(exc) is Exception and not exc.args
    return context.code() if aborted else None
