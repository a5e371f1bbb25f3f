"""Live pressure samplers for the adaptive limiter: process CPU and asyncio event-loop lag.

* :class:`ProcessCpuSampler` follows Kratos BBR's CPU sampler (go-kratos/aegis ``pkg/cpu``):
  sample the CPU used since the previous sample over the wall time elapsed, and smooth it with an
  exponential moving average. Kratos uses ``cpu = cpu * 0.95 + sample * 0.05`` every 500 ms, a
  ~10 s time constant that lets a queue grow for seconds before the limiter reacts (measured with
  ``benchmarks/overload.py``: 2x load collapsed goodput before the EMA crossed the threshold). The
  default here samples every 100 ms with decay 0.85 (~0.6 s time constant): it crosses the
  threshold within about a second of saturation and still smooths out single spikes. The CPU is
  the process's own (``psutil.Process().cpu_times()`` user + system) relative to ONE core: a
  Python process runs its bytecode on one core at a time, so 1.0 is "the interpreter is
  saturated" whatever the host size (C extensions releasing the GIL can push it above 1.0).
* :class:`LoopLagMonitor` is the classic event-loop lag probe (Node's ``monitorEventLoopDelay``,
  aiomonitor): a task sleeps ``interval`` and measures how late it wakes; a busy loop wakes late.

Nothing runs until ``start()`` is called; :func:`shared_cpu_sampler` gives every limiter of a
process the same started sampler, so there is one sampling thread per process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable

import psutil

from telemetry.governance._types import Clock, monotonic

__all__ = ["LoopLagMonitor", "ProcessCpuSampler", "shared_cpu_sampler"]

_log = logging.getLogger("telemetry.governance")


def _process_cpu_seconds() -> Callable[[], float]:
    process = psutil.Process()

    def cpu_seconds() -> float:
        times = process.cpu_times()
        return times.user + times.system

    return cpu_seconds


def _check_smoothing(interval: float, decay: float) -> None:
    if not interval > 0:
        raise ValueError("interval must be > 0")
    if not 0.0 <= decay < 1.0:
        raise ValueError("decay must be in [0, 1)")


class ProcessCpuSampler:
    """Smoothed CPU of this process as a fraction of one core; ``sampler()`` reads it.

    ``start()`` samples every ``interval`` seconds on a daemon thread; tests call
    :meth:`sample_once` instead, with ``cpu_seconds`` and ``clock`` injected.
    """

    def __init__(
        self,
        *,
        interval: float = 0.1,
        decay: float = 0.85,
        cpu_seconds: Callable[[], float] | None = None,
        clock: Clock = monotonic,
    ) -> None:
        _check_smoothing(interval, decay)
        self._interval = float(interval)
        self._decay = float(decay)
        self._cpu_seconds = cpu_seconds if cpu_seconds is not None else _process_cpu_seconds()
        self._clock = clock
        self._value = 0.0
        self._last: tuple[float, float] | None = None  # (wall, cpu) of the previous sample
        self._lock = threading.Lock()  # sample bookkeeping (not the read)
        self._control = threading.Lock()  # start/stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0

    def __call__(self) -> float:
        # One attribute read: atomic under the GIL, so no lock on the limiter's path.
        return self._value

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def sample_once(self) -> float:
        """Take one sample and return the smoothed value. The first call only sets the baseline;
        a sample with no wall time elapsed is ignored."""
        cpu = self._cpu_seconds()
        now = self._clock()
        with self._lock:
            last = self._last
            if last is None or now <= last[0]:
                if last is None:
                    self._last = (now, cpu)
                return self._value
            usage = max(0.0, (cpu - last[1]) / (now - last[0]))
            self._last = (now, cpu)
            self._value = self._value * self._decay + usage * (1.0 - self._decay)
            self.samples += 1
            return self._value

    def start(self) -> ProcessCpuSampler:
        """Start the sampling thread (no-op when running); returns self."""
        with self._control:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop = stop = threading.Event()
            self.sample_once()  # baseline now, so the first interval already yields a sample
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name="telemetry-cpu-sampler", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the sampling thread and join it; the last value stays readable."""
        with self._control:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        failed = False
        while not stop.wait(self._interval):
            try:
                self.sample_once()
                failed = False
            except Exception:
                if not failed:  # log once per failure streak, keep the last value
                    _log.exception("CPU sampling failed; keeping the last value")
                failed = True


class LoopLagMonitor:
    """Smoothed asyncio event-loop lag in seconds; ``monitor()`` reads it.

    ``start()`` from inside the running loop (or ``start(loop)`` from another thread) runs a task
    that sleeps ``interval`` and feeds how late it woke to :meth:`observe`:
    ``lag = lag * decay + sample * (1 - decay)``. ``stop()`` is synchronous and may be called from
    any thread. Tests call :meth:`observe` directly.
    """

    def __init__(self, *, interval: float = 0.1, decay: float = 0.9, clock: Clock = monotonic) -> None:
        _check_smoothing(interval, decay)
        self._interval = float(interval)
        self._decay = float(decay)
        self._clock = clock
        self._value = 0.0
        self.last_lag = 0.0
        """The most recent unsmoothed sample."""
        self.samples = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | concurrent.futures.Future[None] | None = None
        self._active = False  # the probe coroutine is running (until its cancellation completes)

    def __call__(self) -> float:
        return self._value

    @property
    def running(self) -> bool:
        """Started and not yet fully stopped (``stop()`` completes at the loop's next iteration)."""
        task = self._task
        return self._active or (task is not None and not task.done())

    def observe(self, lag: float) -> float:
        """Feed one lag sample (seconds); returns the smoothed value."""
        lag = max(0.0, lag)
        with self._lock:
            self.last_lag = lag
            self._value = self._value * self._decay + lag * (1.0 - self._decay)
            self.samples += 1
            return self._value

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> LoopLagMonitor:
        """Start probing ``loop`` (default: the running loop); no-op when running; returns self."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None:
            if running is None:
                raise RuntimeError("LoopLagMonitor.start() needs a running loop, or pass loop=")
            loop = running
        with self._lock:
            if self._task is not None and not self._task.done():
                return self
            self._loop = loop
            if loop is running:
                self._task = loop.create_task(self._run(), name="telemetry-loop-lag")
            else:
                self._task = asyncio.run_coroutine_threadsafe(self._run(), loop)
        return self

    def stop(self) -> None:
        """Cancel the probe (takes effect at the loop's next iteration); the last value stays."""
        with self._lock:
            task, self._task = self._task, None
            loop, self._loop = self._loop, None
        if task is None or task.done():
            return
        if isinstance(task, concurrent.futures.Future):
            task.cancel()  # thread-safe: cancels the wrapped task through the loop
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            task.cancel()
        elif loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    async def _run(self) -> None:
        interval = self._interval
        clock = self._clock
        self._active = True
        try:
            while True:
                started = clock()
                await asyncio.sleep(interval)
                self.observe(clock() - started - interval)
        finally:
            self._active = False


_shared_lock = threading.Lock()
_shared: ProcessCpuSampler | None = None
_shared_pid = 0


def shared_cpu_sampler() -> ProcessCpuSampler:
    """The process-wide started :class:`ProcessCpuSampler` (default settings), created on first
    use; a forked child gets its own (threads do not survive ``fork``)."""
    global _shared, _shared_pid
    pid = os.getpid()
    with _shared_lock:
        if _shared is None or _shared_pid != pid:  # in a child, psutil would still watch the parent
            _shared = ProcessCpuSampler()
            _shared_pid = pid
        return _shared.start()  # restarts it if someone stopped it
