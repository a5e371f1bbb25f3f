"""What the sync and aio client adapters share: method info cache and call-state creation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from time import perf_counter
from typing import Any, Generic, TypeAlias, TypeVar

import grpc
import grpc.aio

from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side
from telemetry.rpc.concern import Concern, ConcernChain
from telemetry.rpc.retrying import Retrier

_MAX_CACHED_METHODS = 10_000

# The metadata a caller gives a call: (key, value) pairs, or (grpc.aio) a grpc.aio.Metadata.
SyncMetadata: TypeAlias = Sequence[tuple[str, str | bytes]] | None
CallerMetadata: TypeAlias = SyncMetadata | grpc.aio.Metadata


class ClientAdapterBase:
    def __init__(self, concerns: Iterable[Concern], target: str = "") -> None:
        self.chain = ConcernChain(concerns)
        self.target = target
        # The concern that can retry failed calls (governance), if the chain has one.
        self.retrier = next((c for c in self.chain.concerns if isinstance(c, Retrier)), None)
        self._methods: dict[tuple[str | bytes, RpcKind], MethodInfo] = {}
        self._lock = threading.Lock()

    def method_info(self, method: str | bytes, kind: RpcKind) -> MethodInfo:
        info = self._methods.get((method, kind))
        if info is None:
            name = method.decode() if isinstance(method, bytes) else method
            info = self.chain.prepare(MethodInfo(name, kind, Side.CLIENT))
            with self._lock:
                if len(self._methods) >= _MAX_CACHED_METHODS:
                    self._methods.clear()
                self._methods[(method, kind)] = info
        return info

    def start_call(
        self, info: MethodInfo, timeout: float | None, metadata: CallerMetadata, request: Any
    ) -> CallState:
        """Create the call state and start the chain; RejectCall propagates to the adapter.
        A single request is counted here; request streams are counted by the adapter as sent."""
        # grpc.aio's Metadata is a Collection of (key, value) pairs, not the Sequence CallState
        # declares: what reads state.metadata iterates it (tracing's extract() is typed Sequence).
        state = CallState(info, perf_counter(), metadata, "")  # type: ignore[arg-type]
        state.target = self.target
        state.timeout = timeout
        if not info.streams_requests:
            state.request = request
        self.chain.start(state)
        if info.kind is RpcKind.UNARY:
            state.msgs_sent = 1  # what chain.message does for a unary call, without the call
        elif not info.streams_requests:
            self.chain.message(state, False)
        return state

    def end_call(self, state: CallState, code: grpc.StatusCode | None, details: str | None) -> None:
        """Record how the call ended (``code`` None means OK) and finish the chain."""
        state.code = grpc.StatusCode.OK if code is None else code
        if state.code != grpc.StatusCode.OK:
            state.details = details
        elif not state.info.streams_responses:
            self.chain.message(state, True)  # a response stream counted each message as it came
        self.chain.finish(state)


Runner = TypeVar("Runner", bound=ClientAdapterBase)


class WrappedMulticallable(Generic[Runner]):
    """grpc's multicallable of one method, wrapped once, when a stub is built, with the method's
    info and the adapter (``runner``) whose chain its calls run."""

    __slots__ = ("_info", "_inner", "_runner")

    def __init__(self, inner: Any, runner: Runner, info: MethodInfo) -> None:
        self._inner = inner
        self._runner = runner
        self._info = info


def wrapping_method(name: str, kind: RpcKind, wrapper: Callable[[Any, Any, MethodInfo], Any]) -> Any:
    """The channel method ``name`` (``unary_unary`` ...) of an instrumented channel (one with
    ``_channel`` and ``_runner``): grpc's multicallable, made by ``wrapper``."""

    def make(
        self: Any,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        inner = getattr(self._channel, name)(
            method, request_serializer, response_deserializer, _registered_method
        )
        return wrapper(inner, self._runner, self._runner.method_info(method, kind))

    make.__name__ = name
    return make
