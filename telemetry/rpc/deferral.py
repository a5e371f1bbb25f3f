"""Synchronous-to-asynchronous fallback: a call that would fail is queued and sent later.

When a method's rules say ``defer`` and its call is refused (breaker open, throttled, bulkhead
full) or fails with a failure code, the request goes into a bounded :class:`DeferralQueue` and the
caller gets the method's fallback answer ("accepted, will be processed"). A worker thread sends the
queued requests, oldest first, whenever the target's breaker lets calls through. Nothing accepted is
lost silently: a full queue is an explicit RESOURCE_EXHAUSTED for the caller, a request the server
refuses for good (a non-failure error code) is logged, and what is still queued at shutdown is
logged with its count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.degrade import DeferralQueue, DeferralWorker
from telemetry.rpc.status import rpc_error_code

if TYPE_CHECKING:
    from google.protobuf.message import Message

_log = logging.getLogger("telemetry.governance")

ChannelFactory = Callable[[], grpc.Channel]

_CLOSED_STATES = (BreakerState.CLOSED, BreakerState.FORCED_CLOSED)


class DeferredCalls:
    """The queue and sender of one method on one target."""

    def __init__(
        self,
        method: str,
        channel: ChannelFactory,
        breaker: CircuitBreaker | None,
        failure_codes: frozenset[grpc.StatusCode],
        *,
        max_items: int = 1000,
        interval: float = 0.2,
        send_timeout: float = 5.0,
    ) -> None:
        self.method = method
        self._channel_factory = channel
        # The method's multicallable, made on first use (the reply is not needed: its bytes).
        self._send: grpc.UnaryUnaryMultiCallable[Message, bytes] | None = None
        self._breaker = breaker
        self._failure_codes = failure_codes
        self._send_timeout = send_timeout
        self.queue: DeferralQueue[Any] = DeferralQueue(max_items=max_items)
        self._worker = DeferralWorker(
            self.queue,
            self._deliver,
            capacity_available=self._target_healthy,
            interval=interval,
            name=f"telemetry-deferral {method}",
        )

    def offer(self, request: Any) -> bool:
        """Queue ``request``; False when the queue is full (the caller must refuse the call)."""
        if not self.queue.offer(request):
            return False
        if not self._worker.running:
            self._worker.start()
        return True

    @property
    def pending(self) -> int:
        """Calls queued and not yet sent."""
        return len(self.queue)

    def close(self, timeout: float = 5.0) -> int:
        """Stop the worker after sending what it can within ``timeout``; returns (and logs) how
        many requests could not be sent."""
        left = self._worker.stop(timeout) if self._worker.running else len(self.queue)
        if left:
            _log.error(
                "%d deferred calls to %s were not sent before shutdown", left, self.method,
                extra={"grpc.method": self.method, "deferred_pending": left},
            )  # fmt: skip
        return left

    def _target_healthy(self) -> bool:
        return self._breaker is None or self._breaker.state in _CLOSED_STATES

    def _deliver(self, request: Any) -> bool:
        """Send one request. False keeps it queued (the target still fails); True removes it."""
        if self._send is None:
            self._send = self._channel_factory().unary_unary(
                self.method, request_serializer=_serialize, response_deserializer=None
            )
        try:
            self._send(request, timeout=self._send_timeout)
        except grpc.RpcError as error:
            code = rpc_error_code(error)
            if code in self._failure_codes:
                return False
            _log.error(
                "deferred call to %s refused by the server (%s); dropped", self.method, code,
                extra={"grpc.method": self.method},
            )  # fmt: skip
        return True


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
