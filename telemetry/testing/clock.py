"""A fake clock for deterministic tests of time-based algorithms."""

from __future__ import annotations

import threading


class FakeClock:
    """Callable returning the current fake time; ``advance`` or ``sleep`` move it forward."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> float:
        return self()

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
