"""Capture log events (after redaction, before rendering) from the process-wide pipeline."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from telemetry.logging.pipeline import PIPELINE
from telemetry.testing._poll import poll, poll_async


class LogCapture:
    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(dict(event))

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def matching(self, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return poll(lambda: self.events, predicate, timeout, "log events")

    async def wait_for_async(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """:meth:`wait_for` without blocking the event loop."""
        return await poll_async(lambda: self.events, predicate, timeout, "log events")


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    PIPELINE.add_sink(capture)
    try:
        yield capture
    finally:
        PIPELINE.remove_sink(capture)
