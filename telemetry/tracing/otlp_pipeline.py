"""The OTLP export of one signal, as the OTLP exporter specification says
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/) and OTLP itself
(https://opentelemetry.io/docs/specs/otlp/): bounded queue -> export thread -> one serialized
Export*ServiceRequest per batch -> transport. Spans (:mod:`telemetry.tracing.export`) and log records
(:mod:`telemetry.logging.otlp_logs`) subclass it with their encoding.

Callers only append to a bounded deque; a full queue drops the item and counts it (``dropped``), so
a slow or dead collector never blocks or slows an RPC. Retries (OTLP "Failures" and "Retryable
Response Codes"; exporter spec "Retry"): a transient failure (gRPC CANCELLED, DEADLINE_EXCEEDED,
ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and RESOURCE_EXHAUSTED only when the status carries
``google.rpc.RetryInfo``; HTTP 429, 502, 503, 504, or a connection lost without a status) is retried
after the server's delay (``RetryInfo.retry_delay``, ``Retry-After``) or else an exponential backoff
with jitter, for as long as the whole export of the batch stays within ``export_timeout``; any other
failure drops the batch at once. Items lost either way are counted (``failed``) and logged at most
once a minute. Retries wait on the export thread only: meanwhile callers keep appending to the
bounded queue. A response's ``partial_success`` counts the items the collector rejected
(``rejected``; never retried, as the spec says) and is logged at most once a minute too.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Any

from telemetry.backoff import RandomSource, RetryPolicy
from telemetry.batch_queue import BatchQueue
from telemetry.tracing.otlp_failures import MAX_MESSAGE, ExportError, partial_success
from telemetry.tracing.otlp_transports import Transport

EXPORT_LOGGER = "telemetry.export"
"""The logger of the exporters' own warnings (never exported over OTLP themselves: no loop)."""
_log = logging.getLogger(EXPORT_LOGGER)
_LOG_INTERVAL = 60.0  # seconds between two warnings of one kind: a dead collector must not flood logs

DEFAULT_RETRY = RetryPolicy(
    max_attempts=10, initial_backoff=0.5, max_backoff=5.0, multiplier=2.0, jitter=0.2
)
"""Backoff when the server names no delay: 0.5 s doubling to 5 s, +-20% jitter, at most 10
attempts; the export timeout bounds the whole of it first in practice."""


class OtlpExportPipeline:
    """Counters (read from any thread; written by the export thread): ``exported`` (items the
    collector accepted), ``failed`` (lost with their batch), ``rejected`` (refused in a partial
    success), ``retries`` (attempts after the first), ``dropped`` (queue full). ``signal`` and
    ``noun`` name the items in warnings ("spans" and "span", "log records" and "log")."""

    signal = "items"
    noun = "item"

    def __init__(
        self,
        transport: Transport,
        *,
        queue_size: int = 2048,
        batch_size: int = 512,
        schedule_delay: float = 1.0,
        export_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        random_source: RandomSource = random.random,
        thread_name: str = "telemetry-export",
    ) -> None:
        self._transport = transport
        self._timeout = export_timeout
        self._retry = retry
        self._random = random_source
        self._closing = threading.Event()  # set at shutdown: a retry waiting gives up
        self._last_error_log = -math.inf
        self._last_rejection_log = -math.inf
        self.exported = 0
        self.failed = 0
        self.rejected = 0
        self.retries = 0
        self._queue: BatchQueue[Any] = BatchQueue(
            self._export,
            capacity=queue_size,
            batch_size=batch_size,
            interval=schedule_delay,
            name=thread_name,
        )
        self.add = self._queue.put  # the hot path: one bound-method call

    def _encode(self, batch: list[Any]) -> bytes:
        """One serialized Export*ServiceRequest for ``batch``."""
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def force_flush(self, timeout: float = 5.0) -> bool:
        return self._queue.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Export what is queued within ``timeout`` (retrying as usual), then stop: a retry still
        waiting gives up, and what is left gets one attempt."""
        deadline = time.monotonic() + timeout
        self._queue.flush(timeout)
        self._closing.set()
        self._queue.close(max(0.0, deadline - time.monotonic()))
        self._transport.close()

    def _export(self, batch: list[Any]) -> None:
        deadline = time.monotonic() + self._timeout  # the whole export, retries included
        try:
            payload = self._encode(batch)
        except Exception as exc:
            self._lost(len(batch), f"encoding failed: {exc!r}")
            return
        attempt = 1
        while True:
            try:
                reply = self._transport.send(payload, max(deadline - time.monotonic(), 0.001))
            except ExportError as failure:
                delay = self._retry_delay(failure, attempt, deadline)
                if delay is None:
                    self._lost(len(batch), str(failure))
                    return
                if self._closing.wait(delay):
                    self._lost(len(batch), f"{failure} (not retried: shutting down)")
                    return
                attempt += 1
                self.retries += 1
                continue
            except Exception as exc:  # not classified by the transport: not retried
                self._lost(len(batch), repr(exc))
                return
            self._accepted(len(batch), reply)
            return

    def _retry_delay(self, failure: ExportError, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt; None to give up: not retryable, attempts
        spent, or the wait would reach the export timeout (a server asking for longer included)."""
        if not failure.retryable or attempt >= self._retry.max_attempts:
            return None
        if failure.delay is not None:
            delay = failure.delay
        else:
            delay = self._retry.backoff(attempt + 1, self._random)
        if time.monotonic() + delay >= deadline:
            return None
        return delay

    def _accepted(self, count: int, reply: bytes | None) -> None:
        rejected, message = partial_success(reply) if reply else (0, "")
        rejected = min(max(rejected, 0), count)
        self.exported += count - rejected
        if not rejected and not message:
            return
        # OTLP "Partial Success": counted and logged, never retried; a message with 0 rejected
        # spans is a warning from the server.
        self.rejected += rejected
        now = time.monotonic()
        if now - self._last_rejection_log >= _LOG_INTERVAL:
            self._last_rejection_log = now
            _log.warning(
                "collector rejected %s of %s %s (%s so far): %s",
                rejected,
                count,
                self.signal,
                self.rejected,
                message[:MAX_MESSAGE] or "no message",
            )

    def _lost(self, count: int, reason: str) -> None:
        self.failed += count
        now = time.monotonic()
        if now - self._last_error_log >= _LOG_INTERVAL:
            self._last_error_log = now
            _log.warning(
                "%s export failed (%s %s lost so far): %s", self.noun, self.failed, self.signal, reason
            )
