"""Degradation blocks: last-good cache, priority shedding, deferral queue and its worker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from telemetry.governance.degrade import (
    DEFAULT_SHED_LEVELS,
    DeferralQueue,
    DeferralWorker,
    LastGoodCache,
    Priority,
    PriorityShedder,
    thresholds_from_levels,
)
from telemetry.testing import FakeClock
from telemetry.testing._poll import poll

# -- LastGoodCache ------------------------------------------------------------------------------


def test_last_good_cache_returns_the_latest_value_per_key() -> None:
    cache: LastGoodCache[str] = LastGoodCache(clock=FakeClock())
    assert cache.get(("/shop.Shop/Get", "a")) is None
    cache.put(("/shop.Shop/Get", "a"), "v1")
    cache.put(("/shop.Shop/Get", "a"), "v2")
    cache.put(("/shop.Shop/Get", "b"), "w")
    assert cache.get(("/shop.Shop/Get", "a")) == "v2"
    assert cache.get(("/shop.Shop/Get", "b")) == "w"
    assert len(cache) == 2


def test_last_good_cache_evicts_the_least_recently_used() -> None:
    cache: LastGoodCache[int] = LastGoodCache(max_entries=2, clock=FakeClock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c"), len(cache)) == (1, 3, 2)


def test_last_good_cache_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache: LastGoodCache[str] = LastGoodCache(ttl=300.0, clock=clock)
    cache.put("k", "v")
    clock.advance(299.9)
    assert cache.get("k") == "v"  # reading does not extend the TTL
    clock.advance(0.1)
    assert cache.get("k") is None
    assert len(cache) == 0
    cache.put("k", "fresh")  # a new good response starts a new TTL
    clock.advance(200)
    assert cache.get("k") == "fresh"


@pytest.mark.parametrize(
    ("kwargs", "argument"), [({"max_entries": 0}, "max_entries"), ({"ttl": 0}, "ttl")]
)
def test_last_good_cache_arguments(kwargs: dict[str, float], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        LastGoodCache(**kwargs)  # type: ignore[arg-type]


# -- PriorityShedder ----------------------------------------------------------------------------

W, R = True, False


def shed_set(shedder: PriorityShedder, pressure: float) -> set[tuple[str, str]]:
    return {
        (priority.name, "write" if write else "read")
        for priority in Priority
        for write in (W, R)
        if shedder.should_shed(priority, write, pressure)
    }


def test_default_table_sheds_writes_before_reads_and_non_core_first() -> None:
    shedder = PriorityShedder()
    assert shed_set(shedder, 0.69) == set()
    assert shed_set(shedder, 0.7) == {("LOW", "write")}
    assert shed_set(shedder, 0.8) == {("LOW", "write"), ("LOW", "read"), ("NORMAL", "write")}
    at_09 = {
        ("LOW", "write"),
        ("LOW", "read"),
        ("NORMAL", "write"),
        ("NORMAL", "read"),
        ("HIGH", "write"),
    }
    assert shed_set(shedder, 0.9) == at_09
    assert shed_set(shedder, 5.0) == at_09  # HIGH reads and CRITICAL: never


def test_critical_is_never_shed() -> None:
    shedder = PriorityShedder(levels=(0.0, 0.0, 0.0))
    assert not shedder.should_shed(Priority.CRITICAL, W, 100.0)
    assert shedder.level(Priority.CRITICAL, R) is None
    with pytest.raises(ValueError, match="CRITICAL"):
        PriorityShedder(thresholds={(Priority.CRITICAL, W): 0.99})


def test_custom_levels_and_table() -> None:
    shedder = PriorityShedder(levels=(0.5, 0.6, 0.95))
    assert shedder.level(Priority.LOW, W) == 0.5
    assert shedder.level(Priority.NORMAL, R) == 0.95
    assert shedder.thresholds == thresholds_from_levels((0.5, 0.6, 0.95))
    assert PriorityShedder().thresholds == thresholds_from_levels(DEFAULT_SHED_LEVELS)

    # A full table may differ from the default order, e.g. a write-critical service sheds reads only.
    reads = {(Priority.LOW, R): 0.6, (Priority.NORMAL, R): 0.95, (Priority.HIGH, R): 0.99}
    table = PriorityShedder(thresholds=reads)
    assert shed_set(table, 0.6) == {("LOW", "read")}
    assert shed_set(table, 0.99) == {("LOW", "read"), ("NORMAL", "read"), ("HIGH", "read")}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"levels": (0.9, 0.8, 0.7)},  # not rising
        {"levels": (0.7, 0.8)},
        {"thresholds": {(Priority.HIGH, W): 0.5, (Priority.LOW, W): 0.9}},  # LOW later than HIGH
        {"thresholds": {(Priority.HIGH, R): 0.9}},  # NORMAL reads never shed, HIGH reads are
        {"thresholds": {(Priority.LOW, W): -1.0}},
        {"levels": (0.6, 0.7, 0.8), "thresholds": {(Priority.LOW, W): 0.5}},
    ],
)
def test_invalid_shedding_tables(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"levels|thresholds"):
        PriorityShedder(**kwargs)  # type: ignore[arg-type]


# -- DeferralQueue ------------------------------------------------------------------------------


def collect(into: list[Any]) -> Callable[[Any], bool]:
    """A ``process`` that always has capacity and records what it got."""

    def process(item: Any) -> bool:
        into.append(item)
        return True

    return process


def test_queue_is_fifo_and_bounded_with_explicit_rejection() -> None:
    queue: DeferralQueue[int] = DeferralQueue(max_items=3, clock=FakeClock())
    assert [queue.offer(i) for i in range(5)] == [True, True, True, False, False]
    assert (len(queue), queue.pending, queue.accepted, queue.rejected) == (3, 3, 3, 2)
    seen: list[int] = []
    assert queue.drain(collect(seen)) == 3
    assert seen == [0, 1, 2]
    assert (queue.pending, queue.processed) == (0, 3)
    assert queue.offer(9)  # room again


def test_drain_stops_when_capacity_is_missing_and_the_item_stays() -> None:
    queue: DeferralQueue[str] = DeferralQueue(clock=FakeClock())
    for item in "abcd":
        queue.offer(item)
    budget = [2]

    def process(item: str) -> bool:
        if budget[0] == 0:
            return False
        budget[0] -= 1
        return True

    assert queue.drain(process) == 2
    assert len(queue) == 2
    seen: list[str] = []
    assert queue.drain(collect(seen), max_items=1) == 1
    assert seen == ["c"]  # the refused item was still at the head


def test_drain_keeps_the_item_when_process_raises() -> None:
    queue: DeferralQueue[str] = DeferralQueue(clock=FakeClock())
    queue.offer("a")
    queue.offer("b")

    def boom(item: str) -> bool:
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError):
        queue.drain(boom)
    assert (len(queue), queue.processed) == (2, 0)
    seen: list[str] = []
    assert queue.drain(collect(seen)) == 2
    assert seen == ["a", "b"]


def test_expired_items_are_reported_not_dropped() -> None:
    clock = FakeClock()
    expired: list[str] = []
    queue: DeferralQueue[str] = DeferralQueue(clock=clock, max_age=10.0, on_expired=expired.append)
    queue.offer("old")
    clock.advance(6)
    queue.offer("newer")
    clock.advance(5)  # "old" is 11 s old, "newer" 5 s
    seen: list[str] = []
    assert queue.drain(collect(seen)) == 1
    assert (seen, expired, queue.expired, queue.processed) == (["newer"], ["old"], 1, 1)

    queue.offer("x")
    clock.advance(11)
    assert queue.expire() == 1  # without draining (capacity still missing)
    assert expired == ["old", "x"] and len(queue) == 0


def test_max_age_requires_an_expiry_callback() -> None:
    with pytest.raises(ValueError, match="on_expired"):
        DeferralQueue(max_age=1.0)
    with pytest.raises(ValueError, match="max_items"):
        DeferralQueue(max_items=0)


def test_concurrent_drains_do_not_process_an_item_twice() -> None:
    queue: DeferralQueue[int] = DeferralQueue(clock=FakeClock())
    queue.offer(1)
    queue.offer(2)
    inner: list[int] = []

    def process(item: int) -> bool:
        inner.append(queue.drain(lambda _: True))  # a second drain while this one runs
        return True

    assert queue.drain(process) == 2
    assert inner == [0, 0]


# -- DeferralWorker -----------------------------------------------------------------------------


def test_worker_drains_when_capacity_returns() -> None:
    queue: DeferralQueue[int] = DeferralQueue()
    capacity = threading.Event()
    done: list[int] = []
    lock = threading.Lock()

    def process(item: int) -> bool:
        with lock:
            done.append(item)
        return True

    worker = DeferralWorker(queue, process, capacity_available=capacity.is_set, interval=0.01)
    for i in range(10):
        assert queue.offer(i)
    worker.start()
    assert worker.running
    assert poll(lambda: worker.ticks, lambda n: n >= 3, 5.0, "worker ticks") >= 3
    assert len(queue) == 10 and done == []  # no capacity: nothing taken
    capacity.set()
    worker.wake()
    poll(lambda: len(queue), lambda n: n == 0, 5.0, "the queue to drain")
    assert done == list(range(10))
    assert worker.stop() == 0
    assert not worker.running


def test_worker_stop_reports_leftovers_and_keeps_them() -> None:
    queue: DeferralQueue[int] = DeferralQueue()
    for i in range(5):
        queue.offer(i)
    allowed = [2]  # capacity for two more items, then none

    def process(item: int) -> bool:
        if allowed[0] == 0:
            return False
        allowed[0] -= 1
        return True

    worker = DeferralWorker(queue, process, capacity_available=lambda: True, interval=60.0).start()
    assert worker.stop(timeout=1.0) == 3  # stop drained what it could, and says what is left
    assert len(queue) == 3
    assert queue.processed == 2


def test_worker_survives_failures_and_counts_them() -> None:
    queue: DeferralQueue[int] = DeferralQueue()
    queue.offer(1)
    failing = [True]

    def process(item: int) -> bool:
        if failing[0]:
            raise ConnectionError("down")
        return True

    worker = DeferralWorker(queue, process, capacity_available=lambda: True, interval=0.01).start()
    poll(lambda: worker.errors, lambda n: n >= 2, 5.0, "failures")
    assert len(queue) == 1
    failing[0] = False
    poll(lambda: len(queue), lambda n: n == 0, 5.0, "the queue to drain")
    assert worker.stop() == 0
