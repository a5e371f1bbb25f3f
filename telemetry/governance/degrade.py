"""Degradation building blocks: what a service does instead of failing when it sheds load.

* :class:`LastGoodCache`: serve the last good response for a request (stale-if-error, RFC 5861;
  Hystrix's fallback-to-cache) instead of an error, within a TTL.
* :class:`Priority` and :class:`PriorityShedder`: priority-based load shedding (Google SRE book,
  "Handling Overload": criticality classes; Netflix's prioritized shedding): as pressure rises,
  turn off non-core methods first and writes before reads, never the critical ones.
* :class:`DeferralQueue` and :class:`DeferralWorker`: synchronous-to-asynchronous fallback (queue-
  based load levelling, Azure architecture patterns): accept the work now, do it when capacity
  returns. Nothing is ever dropped silently: a full queue rejects explicitly (the caller must report
  it), expired items go to a callback, and stopping reports what is left.

Same rules as the other governance objects: clock injected, a lock held only for bookkeeping (never
across a user callback), no threads until :meth:`DeferralWorker.start`.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

from telemetry.governance._types import Clock, monotonic

__all__ = [
    "DEFAULT_SHED_LEVELS",
    "DeferralQueue",
    "DeferralWorker",
    "LastGoodCache",
    "Priority",
    "PriorityShedder",
    "thresholds_from_levels",
]

_log = logging.getLogger("telemetry.governance")

V = TypeVar("V")
T = TypeVar("T")


class LastGoodCache(Generic[V]):
    """Bounded LRU of the last good response per key (e.g. ``(method, request_key)``), with a TTL.

    ``get`` returns None for a missing or expired key (so do not cache None as a value).
    """

    def __init__(self, *, max_entries: int = 1024, ttl: float = 300.0, clock: Clock = monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if not ttl > 0:
            raise ValueError("ttl must be > 0")
        self._max = max_entries
        self._ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[float, V]] = (
            OrderedDict()
        )  # key -> (expires_at, value)

    def put(self, key: Hashable, value: V) -> None:
        expires = self._clock() + self._ttl
        with self._lock:
            entries = self._entries
            entries[key] = (expires, value)
            entries.move_to_end(key)
            if len(entries) > self._max:
                entries.popitem(last=False)  # least recently used

    def get(self, key: Hashable) -> V | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def __len__(self) -> int:
        """Entries held, expired ones included until they are read or evicted."""
        with self._lock:
            return len(self._entries)


class Priority(enum.IntEnum):
    """How important a method is; lower sheds later."""

    CRITICAL = 0
    """Never shed."""
    HIGH = 1
    NORMAL = 2
    LOW = 3
    """Non-core: the first to go."""


DEFAULT_SHED_LEVELS: tuple[float, float, float] = (0.7, 0.8, 0.9)
"""At the 1st level LOW writes are shed; at the 2nd LOW reads and NORMAL writes; at the 3rd NORMAL
reads and HIGH writes. HIGH reads and CRITICAL are never shed. Writes before reads, non-core first."""


def thresholds_from_levels(levels: Sequence[float]) -> dict[tuple[Priority, bool], float]:
    """The ``(priority, is_write) -> pressure`` table for three rising pressure levels."""
    if len(levels) != 3:
        raise ValueError(f"levels must be three rising pressures, got {list(levels)}")
    first, second, third = (float(level) for level in levels)
    if not 0.0 <= first <= second <= third < math.inf:
        raise ValueError(f"levels must be three rising finite pressures >= 0, got {list(levels)}")
    return {
        (Priority.LOW, True): first,
        (Priority.LOW, False): second,
        (Priority.NORMAL, True): second,
        (Priority.NORMAL, False): third,
        (Priority.HIGH, True): third,
    }


class PriorityShedder:
    """Decides from pressure (fraction of one core, 0..1+) which methods to turn off.

    Either ``levels``, three rising pressures (see :data:`DEFAULT_SHED_LEVELS`), or, for full
    control, ``thresholds``: ``(priority, is_write) -> pressure`` at or above which such calls are
    shed, a pair left out being never shed. CRITICAL may not appear in it, and a less important
    priority may not be shed later than a more important one (for the same ``is_write``).
    """

    __slots__ = ("_levels",)

    def __init__(
        self,
        *,
        levels: Sequence[float] = DEFAULT_SHED_LEVELS,
        thresholds: Mapping[tuple[Priority, bool], float] | None = None,
    ) -> None:
        if thresholds is None:
            thresholds = thresholds_from_levels(levels)
        elif levels is not DEFAULT_SHED_LEVELS:
            raise ValueError("give levels or thresholds, not both")
        table = [math.inf] * (2 * len(Priority))  # index: priority * 2 + is_write (no tuple per call)
        for (key_priority, key_write), level in thresholds.items():
            priority = Priority(key_priority)
            if priority is Priority.CRITICAL:
                raise ValueError("thresholds: CRITICAL is never shed")
            if not (isinstance(level, int | float) and 0.0 <= level < math.inf):
                raise ValueError(f"thresholds: level for {priority.name} must be a finite number >= 0")
            table[priority * 2 + bool(key_write)] = float(level)
        for write in (0, 1):
            for more in (Priority.HIGH, Priority.NORMAL):
                if table[(more + 1) * 2 + write] > table[more * 2 + write]:
                    raise ValueError(
                        f"thresholds: {Priority(more + 1).name} must not be shed later than"
                        f" {more.name} ({'writes' if write else 'reads'})"
                    )
        self._levels = tuple(table)

    def should_shed(self, priority: Priority, is_write: bool, pressure: float) -> bool:
        return pressure >= self._levels[priority * 2 + is_write]

    def level(self, priority: Priority, is_write: bool) -> float | None:
        """The pressure at which such calls are shed, None for never."""
        level = self._levels[priority * 2 + is_write]
        return None if level == math.inf else level

    @property
    def thresholds(self) -> dict[tuple[Priority, bool], float]:
        return {
            (priority, bool(is_write)): level
            for priority in Priority
            for is_write in (False, True)
            if (level := self._levels[priority * 2 + is_write]) != math.inf
        }


class DeferralQueue(Generic[T]):
    """Bounded FIFO of deferred work, processed later by :meth:`drain` when capacity returns.

    ``offer`` returning False is an explicit rejection the caller must report (an error to the
    client, a metric). With ``max_age``, items older than that are handed to ``on_expired`` (and
    counted) instead of being processed, so they are never lost silently either.
    """

    def __init__(
        self,
        *,
        max_items: int = 1000,
        clock: Clock = monotonic,
        max_age: float | None = None,
        on_expired: Callable[[T], object] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if max_age is not None and not max_age > 0:
            raise ValueError("max_age must be > 0 or None")
        if max_age is not None and on_expired is None:
            raise ValueError("on_expired is required with max_age: expired items must be reported")
        self._max = max_items
        self._clock = clock
        self._max_age = max_age
        self._on_expired = on_expired
        self._lock = threading.Lock()
        self._items: deque[tuple[float, T]] = deque()  # (offered_at, item)
        self._draining = False
        self._accepted = 0
        self._rejected = 0
        self._processed = 0
        self._expired = 0

    def offer(self, item: T) -> bool:
        """Queue ``item``; False when full (explicit rejection: report it, nothing was kept)."""
        now = self._clock()
        with self._lock:
            if len(self._items) >= self._max:
                self._rejected += 1
                return False
            self._items.append((now, item))
            self._accepted += 1
            return True

    def drain(self, process: Callable[[T], bool], *, max_items: int | None = None) -> int:
        """Hand items to ``process`` in FIFO order; returns how many it processed.

        When ``process`` returns False (capacity still missing) the item stays at the head and
        draining stops; when it raises, the item stays too and the exception propagates. Expired
        items met on the way go to ``on_expired`` and do not count. One drain at a time: a
        concurrent call returns 0 at once.
        """
        if max_items is not None and max_items < 0:
            raise ValueError("max_items must be >= 0 or None")
        with self._lock:
            if self._draining:
                return 0
            self._draining = True
        done = 0
        try:
            while max_items is None or done < max_items:
                if self._expire_head():
                    continue
                with self._lock:
                    if not self._items:
                        break
                    item = self._items[0][1]
                # Only the drainer pops, and offer appends at the tail: the head stays this item.
                if not process(item):
                    break
                with self._lock:
                    self._items.popleft()
                    self._processed += 1
                done += 1
        finally:
            with self._lock:
                self._draining = False
        return done

    def expire(self) -> int:
        """Hand every expired item to ``on_expired`` now; returns how many. For when capacity stays
        missing and :meth:`drain` is not called (the worker calls this every interval)."""
        if self._max_age is None:
            return 0
        with self._lock:
            if self._draining:
                return 0  # the drainer expires as it goes
            self._draining = True
        count = 0
        try:
            while self._expire_head():
                count += 1
        finally:
            with self._lock:
                self._draining = False
        return count

    def _expire_head(self) -> bool:
        """Pop the head if expired and report it; True if it did. Caller holds the drain flag."""
        if self._max_age is None:
            return False
        now = self._clock()
        with self._lock:
            if not self._items or now - self._items[0][0] <= self._max_age:
                return False
            item = self._items.popleft()[1]
            self._expired += 1
        assert self._on_expired is not None  # checked in __init__
        self._on_expired(item)
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def pending(self) -> int:
        return len(self)

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def processed(self) -> int:
        return self._processed

    @property
    def expired(self) -> int:
        return self._expired


class DeferralWorker(Generic[T]):
    """A daemon thread draining a :class:`DeferralQueue` every ``interval`` seconds while
    ``capacity_available()`` is True (and handing expired items to the queue's callback always).

    ``stop(timeout)`` stops the thread, then drains what it can within what is left of the timeout
    and returns how many items remain; they stay in the queue.
    """

    def __init__(
        self,
        queue: DeferralQueue[T],
        process: Callable[[T], bool],
        *,
        capacity_available: Callable[[], bool],
        interval: float = 0.5,
        batch: int | None = None,
        name: str = "telemetry-deferral",
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be > 0")
        if batch is not None and batch < 1:
            raise ValueError("batch must be >= 1 or None")
        self._queue = queue
        self._process = process
        self._capacity_available = capacity_available
        self._interval = float(interval)
        self._batch = batch
        self._name = name
        self._control = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.ticks = 0
        """Rounds the worker has run (expire, then drain when there is capacity)."""
        self.errors = 0
        """Exceptions from ``process``, ``capacity_available`` or ``on_expired`` (each logged)."""

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> DeferralWorker[T]:
        with self._control:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stopping = False
            self._wake.clear()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Drain now rather than at the next interval (e.g. when capacity has just returned)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> int:
        """Stop the thread, drain what it can within ``timeout`` seconds, return the items left."""
        deadline = time.monotonic() + timeout
        with self._control:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        # One item at a time so the deadline is checked between items.
        while time.monotonic() < deadline and len(self._queue):
            if not self._tick(max_items=1):
                break
        return len(self._queue)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping:
                return
            self._tick(self._batch)

    def _tick(self, max_items: int | None) -> int:
        """Expire, then drain if there is capacity; returns items processed. Never raises."""
        self.ticks += 1
        try:
            self._queue.expire()
            if not self._capacity_available():
                return 0
            return self._queue.drain(self._process, max_items=max_items)
        except Exception:
            self.errors += 1
            _log.exception("deferred work failed (an item that failed to process stays queued)")
            return 0
