"""In-memory span capture: give ``capture.processor`` to a Telemetry handle, read ``spans()``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


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
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = [s.name for s in spans]
                raise AssertionError(f"spans did not arrive within {timeout}s; have {names}")
            time.sleep(0.01)

    async def wait_for_async(
        self, predicate: Callable[[Sequence[ReadableSpan]], bool], timeout: float = 10.0
    ) -> tuple[ReadableSpan, ...]:
        """:meth:`wait_for` for asyncio tests: polls without blocking the loop (which may be
        running the very server that will produce the spans)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = [s.name for s in spans]
                raise AssertionError(f"spans did not arrive within {timeout}s; have {names}")
            await asyncio.sleep(0.01)
