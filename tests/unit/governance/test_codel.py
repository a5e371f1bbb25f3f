"""QueueDelayGate (fake clock): Facebook's CoDel variant, and the executor that measures delay."""

from __future__ import annotations

import threading
import time

import pytest

from telemetry.governance.codel import QueueDelayGate
from telemetry.rpc.executor import QueueTimedExecutor, queue_delay
from telemetry.testing import FakeClock

TARGET = 0.005
INTERVAL = 0.1


def gate(clock: FakeClock) -> QueueDelayGate:
    return QueueDelayGate(target=TARGET, interval=INTERVAL, clock=clock)


def test_short_queue_admits_everything_even_long_waits() -> None:
    clock = FakeClock()
    g = gate(clock)
    for _ in range(3):  # intervals whose least-delayed call waited under the target
        assert g.admit(0.001)
        assert g.admit(0.050)  # one long wait in a draining queue is not a standing queue
        clock.advance(INTERVAL)
    assert not g.overloaded


def test_standing_queue_sloughs_calls_over_twice_the_target() -> None:
    clock = FakeClock()
    g = gate(clock)
    for delay in (0.020, 0.030, 0.025):  # the minimum of this interval: 20 ms > 5 ms target
        g.admit(delay)
    clock.advance(INTERVAL)
    assert g.admit(0.050)  # the first call of an interval only starts its minimum
    assert g.overloaded
    assert not g.admit(2 * TARGET + 0.001)
    assert g.admit(2 * TARGET)  # at the slough timeout: still admitted
    assert g.admit(0.001)


def test_overload_ends_after_an_interval_whose_minimum_is_under_target() -> None:
    clock = FakeClock()
    g = gate(clock)
    g.admit(0.020)
    g.admit(0.020)
    clock.advance(INTERVAL)
    g.admit(0.020)
    assert g.overloaded
    assert g.admit(0.002)  # the queue drained once during this interval
    clock.advance(INTERVAL)
    assert g.admit(0.050)
    assert not g.overloaded
    assert g.admit(0.050)


def test_snapshot_reports_state() -> None:
    clock = FakeClock()
    g = gate(clock)
    g.admit(0.007)
    g.admit(0.009)
    snap = g.snapshot()
    assert snap.min_delay == pytest.approx(0.007)
    assert not snap.overloaded


@pytest.mark.parametrize(("target", "interval"), [(0.0, 0.1), (-1.0, 0.1), (0.1, 0.1)])
def test_invalid_parameters_are_refused(target: float, interval: float) -> None:
    with pytest.raises(ValueError):
        QueueDelayGate(target=target, interval=interval)


def test_executor_tasks_see_their_queue_delay() -> None:
    release = threading.Event()
    with QueueTimedExecutor(max_workers=1) as pool:
        blocker = pool.submit(release.wait, 5)
        queued = pool.submit(queue_delay)  # waits behind the blocker
        release.set()
        assert blocker.result(5)
        waited = queued.result(5)
    assert waited is not None and waited >= 0.0
    assert queue_delay() is None  # not inside a task


def test_executor_delay_includes_the_wait_for_a_worker() -> None:
    started = threading.Event()
    release = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    with QueueTimedExecutor(max_workers=1) as pool:
        pool.submit(hold)
        started.wait(5)
        queued = pool.submit(queue_delay)
        time.sleep(0.02)  # not a wait for a condition: it makes the queued task wait this long
        release.set()
        waited = queued.result(5)
    assert waited is not None and waited >= 0.02
