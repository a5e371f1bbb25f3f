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
Event = dict[str, Any] | Callable[[], dict[str, Any]]  # an event, or a deferred builder of one


class AsyncLineWriter:
    def __init__(
        self,
        stream: TextIO,
        render: Renderer,
        capacity: int = 10_000,
        interval: float = 0.05,
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self._stream = stream
        self._render = render
        self._prepare = prepare  # applied to deferred events once built (redaction)
        self.write_errors = 0
        self._queue: BatchQueue[Event] = BatchQueue(
            self._write,
            capacity=capacity,
            batch_size=256,
            interval=interval,
            name="telemetry-log-writer",
        )

    def __call__(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def put_deferred(self, build: Callable[[], dict[str, Any]]) -> None:
        """Queue a builder; the event is built (and prepared) on the writer thread."""
        self._queue.put(build)

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if the stream is stuck."""
        return self._queue.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.close(timeout)

    def _materialise(self, item: Event) -> dict[str, Any]:
        if not callable(item):
            return item
        event = item()
        return self._prepare(event) if self._prepare is not None else event

    def _write(self, events: list[Event]) -> None:
        lines = []
        for item in events:
            try:
                lines.append(self._render(self._materialise(item)))
            except Exception:  # a value that cannot render loses its line, not the rest
                self.write_errors += 1
        try:
            self._stream.write("".join(f"{line}\n" for line in lines))
            self._stream.flush()
        except Exception:  # closed or broken stream: count, keep draining
            self.write_errors += 1
