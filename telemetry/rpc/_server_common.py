"""What the sync and aio server adapters share: method caching, state creation, error mapping."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias, TypeVar

import grpc
import grpc.aio

from telemetry.rpc.call import CallState, MethodInfo, RejectCall, RpcKind, Side
from telemetry.rpc.concern import Concern, ConcernChain
from telemetry.rpc.relay import relay_metadata
from telemetry.rpc.status import MAX_STATUS_DETAILS, bounded_details, rpc_error_code

_log = logging.getLogger("telemetry")

INTERNAL_ERROR_DETAILS = "internal error"
# grpc-go's words (and code) for a request its codec cannot parse; grpc-java answers INTERNAL too.
UNDECODABLE_DETAILS = "grpc: error unmarshalling request"
_MAX_CACHED_METHODS = 10_000

if TYPE_CHECKING:
    # A method handler; its messages are the service's generated protobuf classes.
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

MetadataPairs: TypeAlias = Sequence[tuple[str, str | bytes]]


class ServingContext(Protocol):
    """What the adapters use of the servicer context grpcio hands a handler, sync or grpc.aio, as
    grpcio's contexts behave. types-grpcio's ``grpc.ServicerContext`` has no ``code()`` or
    ``details()`` (grpcio's has both), and its ``grpc.aio.ServicerContext`` says
    ``invocation_metadata()`` is a ``grpc.aio.Metadata`` and ``code()`` never None: grpcio
    returns a tuple of (key, value) pairs, and None until a status is set."""

    def invocation_metadata(self) -> MetadataPairs | None: ...

    def peer(self) -> str: ...

    def code(self) -> grpc.StatusCode | None: ...

    # bytes on the sync context
    def details(self) -> str | bytes | None: ...

    def set_details(self, details: str) -> None: ...

    def trailing_metadata(self) -> MetadataPairs | None: ...

    def set_trailing_metadata(self, trailing_metadata: tuple[tuple[str, str | bytes], ...]) -> None: ...

    def time_remaining(self) -> float | None: ...


class SyncServingContext(ServingContext, Protocol):
    """A sync ``grpc.ServicerContext``: ``abort`` raises."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...


class AioServingContext(ServingContext, Protocol):
    """A ``grpc.aio.ServicerContext``: ``abort`` sends the status at once, then raises."""

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: MetadataPairs = ()
    ) -> NoReturn: ...

    async def write(self, message: Any) -> None: ...


class ServerAdapterBase:
    """Wraps each method handler once and caches it, keyed by method and the handler it wraps."""

    def __init__(self, concerns: Iterable[Concern]) -> None:
        self.chain = ConcernChain(concerns, serving=True)
        # Someone must log an unexpected handler exception with its stack; the access log does.
        self._logs_exceptions = any(getattr(c, "logs_exceptions", False) for c in self.chain.concerns)
        self._cache: dict[str, tuple[Handler, Handler]] = {}
        self._lock = threading.Lock()

    def wrapped_handler(self, handler: Handler | None, method: str) -> Handler | None:
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED itself
            return None
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        kind = RpcKind.of(handler.request_streaming, handler.response_streaming)
        info = self.chain.prepare(MethodInfo(method, kind, Side.SERVER))
        wrapped = self.wrap(handler, info)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED_METHODS:
                self._cache.clear()
            self._cache[method] = (handler, wrapped)
        return wrapped

    def wrap(self, handler: Handler, info: MethodInfo) -> Handler:
        raise NotImplementedError

    def start_call(self, info: MethodInfo, context: ServingContext, request: Any = None) -> CallState:
        """Start the chain; a RejectCall propagates with its trailing metadata already set (the
        adapter aborts, sync or awaited; an AnswerCall is returned as the response). ``request``
        is the single request, None for a request stream."""
        state = CallState(info, perf_counter(), context.invocation_metadata(), context.peer())
        state.context = context
        state.request = None if request.__class__ is Undecodable else request
        try:
            self.chain.start(state)
        except RejectCall as reject:
            if reject.trailing_metadata:
                context.set_trailing_metadata(reject.trailing_metadata)
            raise
        return state

    def finish_returned(self, state: CallState, context: ServingContext) -> bool:
        """Record the status a handler that returned normally left on ``context``; True if OK.
        Does not finish the chain: the caller may count the response first."""
        state.code = context.code() or grpc.StatusCode.OK
        if state.code == grpc.StatusCode.OK:
            return True
        seal_failure(state, context)
        state.details = status_details(context)
        return False

    def finish_failed(
        self,
        state: CallState,
        exc: BaseException,
        aborted_code: grpc.StatusCode | None,
        context: ServingContext,
    ) -> bool:
        """Record a handler exception and finish the chain. True when the exception was
        unexpected: the adapter must then abort with INTERNAL."""
        unexpected = self.record_failure(state, exc, aborted_code)
        seal_failure(state, context)  # sync: before the status goes; aio aborts went through the proxy
        if not unexpected and state.details is None:
            state.details = status_details(context)
        self.chain.finish(state)
        return unexpected

    def record_failure(
        self, state: CallState, exc: BaseException, aborted_code: grpc.StatusCode | None
    ) -> bool:
        """Map a handler exception to the call's status. Returns True when it was unexpected.

        ``aborted_code`` is the status the handler set through ``context.abort`` (None otherwise).
        Unexpected exceptions become INTERNAL: the client never sees the message or stack.
        """
        if aborted_code is not None and aborted_code != grpc.StatusCode.OK:
            state.code = aborted_code
            return False
        if isinstance(exc, grpc.RpcError) and rpc_error_code(exc) == grpc.StatusCode.DEADLINE_EXCEEDED:
            # A downstream call ran out of the propagated deadline: the whole chain did.
            state.code = grpc.StatusCode.DEADLINE_EXCEEDED
            state.details = "downstream call: deadline exceeded"
            return False
        state.code = grpc.StatusCode.INTERNAL
        state.details = INTERNAL_ERROR_DETAILS
        state.exception = exc
        if not self._logs_exceptions:
            _log.error("unhandled exception in %s", state.info.full_method, exc_info=exc)
        return True


def seal_failure(state: CallState, context: ServingContext) -> None:
    """Before a failed call's status is sent: bound the details the handler set, and mark the
    failure as relaying a governance refusal when a call it made was refused."""
    details = context.details()
    if details is not None and len(details) * 4 > MAX_STATUS_DETAILS:
        text = details.decode("utf-8", "replace") if isinstance(details, bytes) else details
        bounded = bounded_details(text)
        if bounded is not text:
            context.set_details(bounded)
    # A handler's own bug (an unexpected exception that is no downstream call's error) is the
    # served call's fault, whatever its calls met before: not marked.
    exc = state.exception
    if state.relayed is not None and (exc is None or isinstance(exc, grpc.RpcError)):
        context.set_trailing_metadata(relay_metadata(state.relayed, context.trailing_metadata()))


class Undecodable:
    """A single request whose bytes the method's deserializer refused. grpcio answers those before
    any interceptor runs, so the call was in no metric, span or log line, and grpc.aio sent the
    parser's exception text as UNKNOWN; the adapters answer it INTERNAL instead
    (:data:`UNDECODABLE_DETAILS`), counted and traced like any failed call."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, returning :class:`Undecodable` instead of raising."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return Undecodable(exc)

    return decode


def new_handler(handler: Handler, kind: RpcKind, behavior: Callable[..., Any]) -> Handler:
    """A method handler like ``handler`` but running ``behavior``; a single request that does not
    decode reaches it as :class:`Undecodable` (request streams keep grpc's own handling)."""
    factory = {
        RpcKind.UNARY: grpc.unary_unary_rpc_method_handler,
        RpcKind.SERVER_STREAM: grpc.unary_stream_rpc_method_handler,
        RpcKind.CLIENT_STREAM: grpc.stream_unary_rpc_method_handler,
        RpcKind.BIDI_STREAM: grpc.stream_stream_rpc_method_handler,
    }[kind]
    deserializer = handler.request_deserializer
    return factory(
        behavior,
        request_deserializer=deserializer if handler.request_streaming else tolerant(deserializer),
        response_serializer=handler.response_serializer,
    )


def original_behavior(handler: Handler, kind: RpcKind) -> Callable[..., Any]:
    behavior = {
        RpcKind.UNARY: handler.unary_unary,
        RpcKind.SERVER_STREAM: handler.unary_stream,
        RpcKind.CLIENT_STREAM: handler.stream_unary,
        RpcKind.BIDI_STREAM: handler.stream_stream,
    }[kind]
    if behavior is None:
        raise TypeError(f"a {kind} method handler without its {kind} behaviour")
    return behavior


def status_details(context: ServingContext) -> str | None:
    """The details string a handler set (sync contexts keep bytes, aio ones str)."""
    details = context.details()
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return details


_Server = TypeVar("_Server", grpc.Server, grpc.aio.Server)


def wrap_registrations(server: _Server, adapter: ServerAdapterBase) -> _Server:
    """Make ``server`` wrap each method handler once, as it is registered, so calls reach the
    concern chain without grpc's per-call interceptor pipeline. Works for sync and aio servers.
    Interceptors given to the server itself run before the chain."""
    add_generic = server.add_generic_rpc_handlers
    add_registered = getattr(server, "add_registered_method_handlers", None)

    def add_generic_rpc_handlers(generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        add_generic(tuple(_WrappingGenericHandler(handler, adapter) for handler in generic_rpc_handlers))

    def add_registered_method_handlers(
        service_name: str, method_handlers: Mapping[str, Handler]
    ) -> None:
        assert add_registered is not None
        add_registered(
            service_name,
            {
                name: adapter.wrapped_handler(handler, f"/{service_name}/{name}")
                for name, handler in method_handlers.items()
            },
        )

    # Replaced on this server object, not its class: the server is grpc's, made by grpc.server().
    server.add_generic_rpc_handlers = add_generic_rpc_handlers  # type: ignore[method-assign]
    if add_registered is not None:
        server.add_registered_method_handlers = add_registered_method_handlers  # type: ignore[method-assign]
    return server


class _WrappingGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, adapter: ServerAdapterBase) -> None:
        self._inner = inner
        self._adapter = adapter

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        handler = self._inner.service(handler_call_details)
        return self._adapter.wrapped_handler(handler, handler_call_details.method)
