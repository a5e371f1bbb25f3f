"""Pressure samplers: CPU EMA math (injected CPU time and clock), the sampling thread, loop lag."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from telemetry.governance.pressure import LoopLagMonitor, ProcessCpuSampler, shared_cpu_sampler
from telemetry.testing import FakeClock
from telemetry.testing._poll import poll, poll_async


class CpuTime:
    """Scripted process CPU seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def test_cpu_ema_converges_to_the_usage_fraction() -> None:
    clock, cpu = FakeClock(), CpuTime()
    sampler = ProcessCpuSampler(decay=0.95, cpu_seconds=cpu, clock=clock)
    assert sampler.sample_once() == 0.0  # the first sample is only the baseline
    values = []
    for _ in range(200):  # half a core: 0.5 s of CPU per 1 s of wall time
        cpu.seconds += 0.5
        clock.advance(1.0)
        values.append(sampler.sample_once())
    assert values[0] == pytest.approx(0.5 * 0.05)  # cpu = cpu * 0.95 + sample * 0.05
    assert values[9] == pytest.approx(0.5 * (1 - 0.95**10))
    assert values[-1] == pytest.approx(0.5, abs=1e-4)
    assert sampler() == values[-1]
    assert sampler.samples == 200


def test_cpu_ema_follows_a_drop_and_can_exceed_one_core() -> None:
    clock, cpu = FakeClock(), CpuTime()
    sampler = ProcessCpuSampler(cpu_seconds=cpu, clock=clock, decay=0.5)
    sampler.sample_once()
    for _ in range(30):
        cpu.seconds += 0.375  # 1.5 cores over 0.25 s: GIL-free C code on other threads
        clock.advance(0.25)
        sampler.sample_once()
    assert sampler() == pytest.approx(1.5)
    for _ in range(30):
        clock.advance(0.25)  # idle
        sampler.sample_once()
    assert sampler() == pytest.approx(0.0, abs=1e-6)


def test_cpu_sample_without_elapsed_time_is_ignored() -> None:
    clock, cpu = FakeClock(), CpuTime()
    sampler = ProcessCpuSampler(cpu_seconds=cpu, clock=clock)
    sampler.sample_once()
    cpu.seconds += 1.0
    assert sampler.sample_once() == 0.0  # same instant: no division by zero, no sample
    assert sampler.samples == 0


def test_cpu_sampler_thread_samples_until_stopped() -> None:
    start = time.monotonic()
    # Real clock, scripted CPU: exactly half a core, whatever the machine is doing.
    sampler = ProcessCpuSampler(
        interval=0.01, decay=0.5, cpu_seconds=lambda: (time.monotonic() - start) / 2
    )
    assert not sampler.running
    assert sampler.start() is sampler
    assert sampler.start() is sampler  # idempotent: still one thread
    assert sampler.running
    value = poll(sampler, lambda v: v > 0.4, 5.0, "CPU samples")
    assert value < 0.6
    sampler.stop()  # joins the thread
    assert not sampler.running
    assert sampler() > 0.4  # the last value stays readable
    assert sampler.start().running  # and it can start again
    sampler.stop()


def test_cpu_sampler_reads_this_process_by_default() -> None:
    sampler = ProcessCpuSampler()
    sampler.sample_once()
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # burn CPU: the thing being measured
        pass
    assert sampler.sample_once() > 0.0


def test_shared_cpu_sampler_is_one_started_sampler_per_process() -> None:
    got: list[ProcessCpuSampler] = []
    threads = [threading.Thread(target=lambda: got.append(shared_cpu_sampler())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(sampler) for sampler in got}) == 1
    assert got[0] is shared_cpu_sampler()
    assert got[0].running


@pytest.mark.parametrize(
    ("kwargs", "argument"), [({"interval": 0}, "interval"), ({"decay": 1.0}, "decay")]
)
def test_sampler_arguments_are_validated(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        ProcessCpuSampler(**kwargs)
    with pytest.raises(ValueError, match=argument):
        LoopLagMonitor(**kwargs)


def test_loop_lag_ema() -> None:
    monitor = LoopLagMonitor(decay=0.9)
    assert monitor() == 0.0
    assert monitor.observe(0.5) == pytest.approx(0.05)
    monitor.observe(-0.01)  # early wake-ups count as no lag
    assert monitor.last_lag == 0.0
    assert monitor() == pytest.approx(0.045)
    for _ in range(200):
        monitor.observe(0.2)
    assert monitor() == pytest.approx(0.2, abs=1e-6)


async def test_loop_lag_monitor_measures_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval=0.01, decay=0.5)
    assert monitor.start() is monitor
    assert monitor.running
    await poll_async(lambda: monitor.samples, lambda n: n >= 2, 5.0, "lag samples")
    time.sleep(0.2)  # block the event loop: this is the lag being measured, not a wait
    await poll_async(lambda: monitor.last_lag, lambda v: v > 0.1, 5.0, "a late wake-up")
    assert monitor() > 0.05
    monitor.stop()
    await poll_async(lambda: monitor.running, lambda running: not running, 5.0, "the probe to stop")
    monitor.stop()  # idempotent


def test_loop_lag_monitor_needs_a_loop() -> None:
    with pytest.raises(RuntimeError, match="running loop"):
        LoopLagMonitor().start()


def test_loop_lag_monitor_started_and_stopped_from_another_thread() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monitor = LoopLagMonitor(interval=0.01).start(loop)
        poll(lambda: monitor.samples, lambda n: n >= 3, 5.0, "lag samples")
        monitor.stop()
        poll(lambda: monitor.running, lambda running: not running, 5.0, "the probe to stop")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()
