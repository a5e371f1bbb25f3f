"""A bounded, non-blocking line writer.

Log calls only append an event dict to a bounded queue; a daemon thread renders and writes batches.
A slow or blocked stream therefore fills the queue instead of stalling handlers: past ``capacity``
events are dropped and counted (``dropped``), never waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from telemetry.batch_queue import BatchQueue

Renderer = Callable[[dict[str, Any]], str]


class AsyncLineWriter:
    def __init__(
        self, stream: TextIO, render: Renderer, capacity: int = 10_000, interval: float = 0.05
    ) -> None:
        self._stream = stream
        self._render = render
        self.write_errors = 0
        self._queue: BatchQueue[dict[str, Any]] = BatchQueue(
            self._write,
            capacity=capacity,
            batch_size=256,
            interval=interval,
            name="telemetry-log-writer",
        )

    def __call__(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if the stream is stuck."""
        return self._queue.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.close(timeout)

    def _write(self, events: list[dict[str, Any]]) -> None:
        lines = []
        for event in events:
            try:
                lines.append(self._render(event))
            except Exception:  # a value that cannot render loses its line, not the rest
                self.write_errors += 1
        try:
            self._stream.write("".join(f"{line}\n" for line in lines))
            self._stream.flush()
        except Exception:  # closed or broken stream: count, keep draining
            self.write_errors += 1
