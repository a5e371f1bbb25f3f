"""BatchQueue: full batches between ticks, everything at a tick, a flush or close."""

from __future__ import annotations

import threading
from typing import Any

from helpers import wait_until

from telemetry.batch_queue import BatchQueue


class Recorder:
    """A handler that records batch sizes and, while ``gate`` is clear, holds the worker the way
    a slow export does."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, batch: list[int]) -> None:
        self.sizes.append(len(batch))
        self.entered.set()
        assert self.gate.wait(10)


def queue_of(handler: Any, interval: float) -> BatchQueue[int]:
    return BatchQueue(handler, capacity=1000, batch_size=10, interval=interval, name="test-queue")


def test_items_arriving_during_a_batch_wait_for_a_full_batch() -> None:
    # The regression: the worker used to hand on whatever arrived while it handled a batch, so
    # under steady load it exported a few items at a time, without pause.
    sizes: list[int] = []
    returned = threading.Event()

    def handle(batch: list[int]) -> None:
        sizes.append(len(batch))
        if len(sizes) == 1:
            for i in range(3):  # arrive while the first batch is being handled
                queue.put(100 + i)
            returned.set()

    queue = queue_of(handle, interval=3600)
    for i in range(10):
        queue.put(i)
    assert returned.wait(5)
    for i in range(7):
        queue.put(i)
    wait_until(lambda: len(sizes) == 2)
    assert sizes == [10, 10]  # the three waited to make a full batch with the next seven
    queue.close(5)


def test_a_partial_batch_goes_at_the_tick() -> None:
    recorder = Recorder()
    queue = queue_of(recorder, interval=0.05)
    for i in range(3):
        queue.put(i)
    wait_until(lambda: recorder.sizes == [3])
    queue.close(5)


def test_a_tick_hands_on_what_waits_then_not_what_arrives_meanwhile() -> None:
    recorder = Recorder()
    queue = queue_of(recorder, interval=0.2)
    recorder.gate.clear()
    for i in range(4):
        queue.put(i)
    assert recorder.entered.wait(5)  # the tick took the four
    queue.put(99)  # arrives during that batch: due at the next tick, not straight after
    recorder.gate.set()
    wait_until(lambda: len(recorder.sizes) == 2)
    assert recorder.sizes == [4, 1]
    queue.close(5)


def test_flush_and_close_hand_on_everything() -> None:
    recorder = Recorder()
    queue = queue_of(recorder, interval=3600)
    for i in range(23):
        queue.put(i)
    assert queue.flush(5)
    assert sum(recorder.sizes) == 23 and max(recorder.sizes) == 10
    for i in range(4):
        queue.put(i)
    queue.close(5)
    assert sum(recorder.sizes) == 27
    queue.put(1)  # after close: dropped, counted
    assert queue.dropped == 1


def test_a_full_queue_drops_and_counts() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    queue: BatchQueue[int] = BatchQueue(recorder, capacity=5, batch_size=5, interval=3600, name="t")
    for i in range(5):
        queue.put(i)
    assert recorder.entered.wait(5)  # the worker holds the five
    for i in range(7):
        queue.put(i)
    assert queue.dropped == 2
    recorder.gate.set()
    queue.close(5)
    assert sum(recorder.sizes) == 10
