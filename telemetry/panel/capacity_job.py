"""The capacity test run from the panel: the runner of :mod:`telemetry.panel.capacity` (the same
load driver and measurements as the CLI) in a background thread, which the page polls.

A thread rather than the CLI in a subprocess: the test needs the panel's own etcd and Prometheus
clients (their credentials and TLS are already configured; a subprocess would need them handed on)
and reports each step as it is measured. The run is bounded by the plan's ``max_seconds`` (see
:mod:`telemetry.load.stepping`) and puts back the load settings in force before, whatever happens,
so a session that goes away mid-test leaves nothing behind. One test runs at a time in a panel
process: two would fight over ``/loadgen/settings``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from telemetry.load.capacity import CapacityPoints, Choice, Step, analyse
from telemetry.load.live import read_load_status
from telemetry.load.stepping import RunResult, StepPlan, run_steps
from telemetry.panel.capacity import LoadDriver, measure_step
from telemetry.panel.control_plane import ControlPlane
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import PrometheusError

__all__ = ["CapacityJob", "RefusedError"]

_ONE_AT_A_TIME = threading.Lock()


class RefusedError(Exception):
    """The test cannot start (no load generator, another test running); the message says why."""


@dataclass
class CapacityJob:
    """One capacity test of ``service``; :meth:`start` runs it, :attr:`done` says when it ended."""

    service: str
    plan: StepPlan
    choice: Choice = "A"
    headroom: float = 0.8
    cores: float = 1.0
    began: float = field(default_factory=time.monotonic)
    measured: list[Step] = field(default_factory=list)
    """The steps measured so far (the progress)."""
    result: RunResult | None = None
    points: CapacityPoints | None = None
    error: str | None = None
    _thread: threading.Thread | None = None

    def start(self, plane: ControlPlane, live: LiveQueries, actor: str) -> CapacityJob:
        if read_load_status(plane.client) is None:
            raise RefusedError("no load generator reports a status in etcd (/loadgen/status)")
        if not _ONE_AT_A_TIME.acquire(blocking=False):
            raise RefusedError("another capacity test is running in this panel")
        try:
            driver = LoadDriver(plane, reason=f"capacity test of {self.service}", actor=actor)
        except Exception:
            _ONE_AT_A_TIME.release()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(driver, live), name=f"capacity-{self.service}", daemon=True
        )
        self._thread.start()
        return self

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def wait(self, timeout: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    def _run(self, driver: LoadDriver, live: LiveQueries) -> None:
        measure = measure_step(live, self.service)

        def tolerant(offered: float, seconds: float) -> Step | None:
            try:
                return measure(offered, seconds)
            except PrometheusError:
                return None  # a step Prometheus could not answer for is left out

        try:
            self.result = run_steps(
                self.plan, driver.set_rate, tolerant, driver.restore, on_step=self.measured.append
            )
            self.points = analyse(
                self.result.steps, choice=self.choice, headroom=self.headroom, cores=self.cores
            )
        except Exception as exc:  # reported on the page; restore() has run
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            _ONE_AT_A_TIME.release()
