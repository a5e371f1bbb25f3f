"""A bounded, non-blocking line writer.

Log calls only append an event dict (or a :class:`DeferredEvent`, built there) to a bounded queue;
a daemon thread renders and writes batches.
A slow or blocked stream therefore fills the queue instead of stalling handlers: past ``capacity``
events are dropped and counted (``dropped``), never waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TextIO

from telemetry.batch_queue import BatchQueue
from telemetry.logging.render import render_json

Renderer = Callable[[dict[str, Any]], str]


class DeferredEvent(Protocol):
    """An event built on the writer thread, not by the caller."""

    def event(self) -> dict[str, Any]:
        """The event dict (prepared and rendered by the writer)."""
        ...

    def json_line(self) -> str | None:
        """The event already rendered as :func:`render_json` would, or None when :meth:`event`
        must be rendered; asked only when the writer renders JSON."""
        ...


Event = dict[str, Any] | DeferredEvent


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
        self._renders_json = render is render_json
        self.write_errors = 0
        self.tap: Callable[[dict[str, Any]], None] | None = None
        """Called on the writer thread with each event, built and prepared, before it is written
        (the OTLP log export's queue): the request path pays nothing for it."""
        self._queue: BatchQueue[Event] = BatchQueue(
            self._write,
            capacity=capacity,
            batch_size=256,
            interval=interval,
            name="telemetry-log-writer",
        )
        # Queue an event to build (and prepare) on the writer thread: the queue's put itself,
        # one call on the request path.
        self.put_deferred: Callable[[DeferredEvent], None] = self._queue.put

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

    def _line(self, item: Event) -> str:
        tap = self.tap
        if type(item) is dict:
            if tap is not None:
                tap(item)
            return self._render(item)
        assert not isinstance(item, dict)
        if self._renders_json and tap is None:
            line = item.json_line()
            if line is not None:
                return line
        event = item.event()
        prepared = self._prepare(event) if self._prepare is not None else event
        if tap is not None:
            tap(prepared)
        return self._render(prepared)

    def _write(self, events: list[Event]) -> None:
        lines = []
        for item in events:
            try:
                lines.append(self._line(item))
            except Exception:  # a value that cannot render loses its line, not the rest
                self.write_errors += 1
        try:
            self._stream.write("".join(f"{line}\n" for line in lines))
            self._stream.flush()
        except Exception:  # closed or broken stream: count, keep draining
            self.write_errors += 1
