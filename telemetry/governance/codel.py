"""Queue-delay shedding: Facebook's CoDel variant for server request queues.

A call's *queue delay* is the time between its arrival and a worker starting it. A short queue that
drains is healthy; a *standing* queue (every call waits) means offered load exceeds capacity, and
then every queued call waits for all those ahead of it, so latency grows until deadlines expire and
no work done is useful. CoDel (Nichols and Jacobson, "Controlling Queue Delay", ACM Queue 2012)
detects a standing queue by the *minimum* delay over an interval: if even the luckiest call of the
last ``interval`` waited more than ``target``, the queue never emptied.

Facebook's server variant (folly ``executors/Codel.cpp``; Maurer, "Fail at Scale", ACM Queue 2015),
used here: at the end of each interval the service is *overloaded* when that interval's minimum
delay exceeded ``target``; while overloaded, calls that waited more than ``2 * target`` (the slough
timeout) are refused as they reach a worker. Refusing at dequeue is cheap and drains the queue
quickly, so the calls that are admitted are fresh ones, which finish within their deadlines. The
first call of each interval is always admitted (one sample says nothing about a queue).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from telemetry.governance._types import Clock, monotonic

__all__ = ["QueueDelayGate", "QueueDelaySnapshot"]


@dataclass(frozen=True, slots=True)
class QueueDelaySnapshot:
    overloaded: bool
    """The last complete interval's minimum queue delay exceeded the target."""
    min_delay: float
    """Seconds: the smallest queue delay seen so far in the current interval."""


class QueueDelayGate:
    """Admit or refuse a call from how long it waited in the server's queue; see module docs."""

    __slots__ = ("_clock", "_interval", "_interval_end", "_lock", "_min_delay", "_overloaded",
                 "_reset", "_slough", "_target")  # fmt: skip

    def __init__(
        self, *, target: float = 0.005, interval: float = 0.1, clock: Clock = monotonic
    ) -> None:
        if not target > 0:
            raise ValueError(f"target must be > 0, got {target!r}")
        if not interval > target:
            raise ValueError(f"interval must be > target, got {interval!r}")
        self._target = float(target)
        self._slough = 2.0 * float(target)
        self._interval = float(interval)
        self._clock = clock
        self._lock = threading.Lock()
        self._interval_end = clock() + self._interval
        self._min_delay = 0.0
        self._reset = True  # the next call starts the interval's minimum
        self._overloaded = False

    def admit(self, delay: float) -> bool:
        """``delay``: seconds the call waited before a worker took it. False: refuse it."""
        now = self._clock()
        with self._lock:
            if now >= self._interval_end:
                self._interval_end = now + self._interval
                self._overloaded = self._min_delay > self._target
                self._reset = True
            if self._reset:
                self._reset = False
                self._min_delay = delay
                return True
            self._min_delay = min(self._min_delay, delay)
            return not (self._overloaded and delay > self._slough)

    @property
    def overloaded(self) -> bool:
        with self._lock:
            return self._overloaded

    def snapshot(self) -> QueueDelaySnapshot:
        with self._lock:
            return QueueDelaySnapshot(self._overloaded, self._min_delay)
