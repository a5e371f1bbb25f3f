"""A bounded, non-blocking queue drained in batches by one background thread.

The log writer and the span exporter both need the same thing: callers on the request path only
append (a full queue drops the item and counts it, it never waits), and a daemon thread takes batches
every ``interval`` seconds, or sooner once ``batch_size`` items wait. ``put`` touches no lock or event
in the common case, so it costs well under a microsecond.

Between two ticks of the interval the worker hands on only full batches, as the OpenTelemetry SDK's
BatchSpanProcessor does. Draining whatever arrived while the last batch was being handled would make
the worker run without pause under steady load, handling a handful of items at a time and paying each
batch's fixed cost (an export call, a write) hundreds of times a second on the request path's GIL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    def __init__(
        self,
        handle_batch: Callable[[list[T]], Any],
        *,
        capacity: int,
        batch_size: int,
        interval: float,
        name: str,
    ) -> None:
        self._handle = handle_batch
        self._capacity = capacity
        self._batch_size = batch_size
        self._interval = interval
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._busy = False  # the worker holds a batch it has taken off the queue
        self._drain_requested = False  # a flush or close wants everything, not only full batches
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        queue = self._queue
        if len(queue) >= self._capacity or self._stopping:
            self.dropped += 1
            return
        queue.append(item)
        if len(queue) == self._batch_size:
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything put so far has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._drain_requested = True
                self._wake.set()
                self._done.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        queue = self._queue
        tick = time.monotonic() + self._interval
        while True:
            self._wake.wait(max(0.0, tick - time.monotonic()))
            self._wake.clear()
            now = time.monotonic()
            # Items due now, whatever the batch they make: all that wait at a tick, a flush or
            # close; otherwise none (full batches only). What arrives meanwhile waits its turn.
            due = 0
            if now >= tick or self._drain_requested or self._stopping:
                self._drain_requested = False
                tick = now + self._interval
                due = len(queue)
            while queue and (due > 0 or len(queue) >= self._batch_size):
                self._busy = True
                batch: list[T] = []
                while queue and len(batch) < self._batch_size:
                    batch.append(queue.popleft())
                due -= len(batch)
                with contextlib.suppress(Exception):  # handlers report their own failures
                    self._handle(batch)
                with self._done:
                    self._busy = False
                    self._done.notify_all()
            if self._stopping:
                return
