"""In-memory span capture: give ``capture.processor`` to a Telemetry handle, read ``spans()``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry.testing._poll import poll, poll_async


class SpanCapture:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.processor = SimpleSpanProcessor(self.exporter)

    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def clear(self) -> None:
        self.exporter.clear()

    def wait_for(
        self, predicate: Callable[[Sequence[ReadableSpan]], bool], timeout: float = 10.0
    ) -> tuple[ReadableSpan, ...]:
        """Poll until ``predicate(spans)`` holds; raise AssertionError with what was seen."""
        return poll(self.spans, predicate, timeout, "spans")

    async def wait_for_async(
        self, predicate: Callable[[Sequence[ReadableSpan]], bool], timeout: float = 10.0
    ) -> tuple[ReadableSpan, ...]:
        """:meth:`wait_for` without blocking the event loop."""
        return await poll_async(self.spans, predicate, timeout, "spans")
