"""One normalized description of an RPC, shared by every concern and every adapter.

A :class:`MethodInfo` is built once per method (per side) and cached; a :class:`CallState` is the only
per-call allocation the adapters make. Concerns read the method info and write their own slots on the
call state, so the sync and aio adapters for all four RPC kinds drive the same code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from contextvars import ContextVar
from typing import Any

import grpc

from telemetry.method_names import split_method


class RpcKind(enum.StrEnum):
    """The four gRPC arities, spelled as go-grpc-prometheus labels them (``grpc_type``)."""

    UNARY = "unary"
    CLIENT_STREAM = "client_stream"
    SERVER_STREAM = "server_stream"
    BIDI_STREAM = "bidi_stream"

    @classmethod
    def of(cls, request_streaming: bool, response_streaming: bool) -> RpcKind:
        if request_streaming:
            return cls.BIDI_STREAM if response_streaming else cls.CLIENT_STREAM
        return cls.SERVER_STREAM if response_streaming else cls.UNARY


class Side(enum.StrEnum):
    SERVER = "server"
    CLIENT = "client"


# A concern and one of its call hooks for a method (a bound ``on_start``, ``on_finish``, ...).
Hook = tuple[object, Callable[..., None]]


class MethodInfo:
    """What is fixed for one method on one side; built once and cached by the adapters."""

    __slots__ = (
        "extras",
        "finishers",
        "full_method",
        "kind",
        "message_hooks",
        "method",
        "owner",
        "rpc_method",
        "service",
        "side",
        "starters",
        "streams_requests",
        "streams_responses",
    )

    def __init__(self, full_method: str, kind: RpcKind, side: Side) -> None:
        self.full_method = full_method
        self.service, self.method = split_method(full_method)
        self.rpc_method = f"{self.service}/{self.method}"  # OTel `rpc.method` and span name
        self.kind = kind
        self.streams_requests = kind in (RpcKind.CLIENT_STREAM, RpcKind.BIDI_STREAM)
        self.streams_responses = kind in (RpcKind.SERVER_STREAM, RpcKind.BIDI_STREAM)
        self.side = side
        # The name of the telemetry service serving the method, for the lines its handler logs
        # (set by the server's access log; None: the process's default service).
        self.owner: str | None = None
        # The call hooks of the chain's concerns for this method, resolved by ConcernChain.prepare.
        self.starters: tuple[Hook, ...] = ()
        self.message_hooks: tuple[Hook, ...] = ()
        self.finishers: tuple[Hook, ...] = ()
        # Per-method precomputed data owned by concerns (e.g. metric children), keyed by concern.
        self.extras: dict[object, Any] = {}


class RejectCall(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised by a concern's ``on_start`` to refuse a call before it runs (or, for clients, is sent).

    The adapter finishes the concerns that already started with ``code`` and fails the call with it.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing_metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


_NO_ANSWER: Any = object()


def has_answer(state: CallState) -> bool:
    return state.answer is not _NO_ANSWER


class AnswerCall(RejectCall):
    """Raised by a concern's ``on_start`` to answer a call with ``response`` instead of running it
    (a governance fallback). Only for methods with a single response; the call ends OK."""

    def __init__(
        self, response: Any, details: str, trailing_metadata: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(grpc.StatusCode.OK, details, trailing_metadata)
        self.response = response


class CallState:
    """Per-call scratchpad. Adapters fill the common slots; each concern owns its own slots."""

    __slots__ = (
        "_extras",
        "answer",
        "call_token",
        "code",
        "context",
        "deferred",
        "details",
        "duration",
        "exception",
        "fields",
        "finished",
        "governance",
        "info",
        "metadata",
        "msgs_received",
        "msgs_sent",
        "outgoing_metadata",
        "peer",
        "relayed",
        "request",
        "response",
        "span",
        "span_token",
        "start",
        "target",
        "timeout",
        "trailing",
    )

    def __init__(
        self,
        info: MethodInfo,
        start: float,
        metadata: Sequence[tuple[str, Any]] | None,
        peer: str,
    ) -> None:
        self.info = info
        self.context: Any = None  # server side: the grpc servicer context
        self.start = start
        self.metadata = metadata or ()
        self.peer = peer
        self.code = grpc.StatusCode.OK
        self.details: str | None = None
        self.duration = 0.0  # seconds, set when the chain finishes
        self.exception: BaseException | None = None
        self.msgs_received = 0
        self.msgs_sent = 0
        # Client only: the timeout to send, and the metadata to send when concerns add to the
        # caller's (trace context, ...): None sends the caller's; the first concern adding a header
        # starts the list from a copy of ``metadata``, and every concern appends to it.
        self.timeout: float | None = None
        self.outgoing_metadata: list[tuple[str, str]] | None = None
        self.target = ""
        self.span: Any = None
        self.span_token: Any = None
        self.call_token: Any = None  # server: resets current_call when the chain finishes
        self.fields: dict[str, Any] | None = None  # access-log fields added by handler code
        self.request: Any = None
        self.response: Any = None
        self.governance: Any = None  # what the governance concern holds for the call
        # Client, single response: an AnswerCall, set by a concern when the call failed but has a
        # fallback answer (its trailing metadata tells the caller it was a fallback).
        self.answer: Any = _NO_ANSWER
        # Client: the trailing metadata of a call that failed (read only then): a tuple, or a
        # grpc.aio.Metadata.
        self.trailing: Collection[tuple[str, Any]] = ()
        # Server: a governance refusal of a call this one made, which its failure relays
        # (telemetry.rpc.relay).
        self.relayed: str | None = None
        # Client (grpc.aio direct calls): the chain was finished, so a later path must not again.
        self.finished = False
        # Server (grpc.aio): seconds governance holds the call before its handler (a leaky
        # bucket's turn); the adapter awaits them.
        self.deferred = 0.0
        self._extras: dict[Any, Any] | None = None

    @property
    def extras(self) -> dict[Any, Any]:
        """Per-call values of concerns written outside this package, under keys of their own
        choosing (the concern itself, say); made on first use, so calls that need none pay
        nothing for it."""
        extras = self._extras
        if extras is None:
            extras = self._extras = {}
        return extras


# The call being served in this context (set by a server's concern chain from its start to its
# finish): the fields handler code adds to its access line, its deadline, its service's name.
current_call: ContextVar[CallState | None] = ContextVar("telemetry_current_call", default=None)

# True while a retrying channel starts a retry (not a first attempt): retry budgets count first
# attempts only (they earn the retries).
retry_attempt: ContextVar[bool] = ContextVar("telemetry_retry_attempt", default=False)
