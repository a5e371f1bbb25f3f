"""A bounded, non-blocking line writer.

Log calls only append an event dict to a bounded deque; a daemon thread renders and writes it. A slow
or blocked stream therefore fills the queue instead of stalling handlers: past ``capacity`` events are
dropped and counted (``dropped``), never waited for.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

Renderer = Callable[[dict[str, Any]], str]


class AsyncLineWriter:
    def __init__(self, stream: TextIO, render: Renderer, capacity: int = 10_000) -> None:
        self._stream = stream
        self._render = render
        self._capacity = capacity
        self._queue: deque[dict[str, Any]] = deque()
        self._wakeup = threading.Event()
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self.dropped = 0
        self.write_errors = 0
        self._thread = threading.Thread(target=self._run, name="telemetry-log-writer", daemon=True)
        self._thread.start()

    def __call__(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= self._capacity or self._stopping:
            self.dropped += 1
            return
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written; False if the stream is stuck."""
        deadline = time.monotonic() + timeout
        while True:
            self._wakeup.set()
            if not self._idle.wait(max(0.0, deadline - time.monotonic())):
                return False
            if not self._queue:  # idle may be stale when an append raced the writer going idle
                return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stopping = True
        self._wakeup.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            while queue:
                lines: list[str] = []
                while queue and len(lines) < 256:
                    event = queue.popleft()
                    try:
                        lines.append(self._render(event))
                    except Exception:  # a value that cannot render loses its line, not the rest
                        self.write_errors += 1
                try:
                    self._stream.write("".join(f"{line}\n" for line in lines))
                    self._stream.flush()
                except Exception:  # closed or broken stream: count, keep draining
                    self.write_errors += 1
            self._idle.set()
            if self._stopping:
                return
