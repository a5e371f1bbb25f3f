"""The capacity test's steps: raise the offered rate step by step, measure each, stop by itself.

:func:`run_steps` drives any load through two callables, so it is tested without a network:
``set_rate(rate)`` puts a steady offered rate in force (the runner in
:mod:`telemetry.panel.capacity` writes ``/loadgen/settings``), ``measure(offered, seconds)``
measures the last ``seconds`` (Prometheus there). Each step: set the rate, wait ``settle_seconds``
(the generator applies a change within a second; the service's queues settle), wait
``hold_seconds``, measure that hold.

The run stops by itself, bounded in steps, load and time:

* at the plan's ceiling (its last rate) or after its number of steps;
* when the next step could not finish within ``max_seconds`` (the whole run, default 3 minutes);
* when p99 collapses (at least ``stop_p99`` times the baseline, the median p99 of the first steps),
  the error ratio reaches ``stop_errors``, or the goodput falls below ``stop_goodput`` of the best
  so far: past that point a higher load only hurts the service, it shows nothing new.

``restore()`` is called at the end whatever happens (a failed measurement, Ctrl-C): the load
settings that were in force before the test come back.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from telemetry.load.capacity import Step
from telemetry.load.settings import RATE_MAX

__all__ = ["RunResult", "StepPlan", "run_steps"]

_BASELINE_STEPS = 3


@dataclass(frozen=True, kw_only=True)
class StepPlan:
    """The steps of a capacity test and when it stops (see the module doc)."""

    start: float = 10.0
    """The first step's offered rate (calls/s)."""
    ceiling: float = 200.0
    """The last step's offered rate: the test never offers more."""
    steps: int = 12
    hold_seconds: float = 10.0
    settle_seconds: float = 3.0
    max_seconds: float = 180.0
    stop_p99: float = 5.0
    stop_errors: float = 0.2
    stop_goodput: float = 0.7

    def __post_init__(self) -> None:
        if not 0 < self.start <= self.ceiling <= RATE_MAX:
            raise ValueError(
                f"need 0 < start <= ceiling <= {RATE_MAX:g}, got {self.start}, {self.ceiling}"
            )
        if not 1 <= self.steps <= 100:
            raise ValueError(f"steps must be within [1, 100], got {self.steps}")
        if not (self.hold_seconds >= 1 and self.settle_seconds >= 0 and self.max_seconds > 0):
            raise ValueError("need hold_seconds >= 1, settle_seconds >= 0 and max_seconds > 0")
        if not (self.stop_p99 > 1 and 0 < self.stop_errors <= 1 and 0 < self.stop_goodput <= 1):
            raise ValueError("need stop_p99 > 1, stop_errors and stop_goodput in (0, 1]")

    def rates(self) -> list[float]:
        """The offered rate of each step, evenly spaced from ``start`` to ``ceiling``."""
        if self.steps == 1:
            return [self.ceiling]
        gap = (self.ceiling - self.start) / (self.steps - 1)
        return [round(self.start + i * gap, 3) for i in range(self.steps)]


@dataclass(frozen=True, slots=True)
class RunResult:
    steps: tuple[Step, ...]
    stopped: str
    """Why the run ended, one sentence."""
    seconds: float


def run_steps(
    plan: StepPlan,
    set_rate: Callable[[float], None],
    measure: Callable[[float, float], Step | None],
    restore: Callable[[], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[Step], None] | None = None,
) -> RunResult:
    """Run ``plan``'s steps (see the module doc); ``on_step`` is told of each measured step.
    A step ``measure`` returns None for (no data) is left out."""
    began = clock()
    measured: list[Step] = []
    stopped = f"reached the ceiling ({plan.ceiling:g} calls/s)"
    try:
        for rate in plan.rates():
            if clock() - began + plan.settle_seconds + plan.hold_seconds > plan.max_seconds:
                stopped = f"time limit: another step would pass {plan.max_seconds:g} s"
                break
            set_rate(rate)
            sleep(plan.settle_seconds + plan.hold_seconds)
            step = measure(rate, plan.hold_seconds)
            if step is None:
                continue
            measured.append(step)
            if on_step is not None:
                on_step(step)
            collapse = _collapse(measured, plan)
            if collapse is not None:
                stopped = collapse
                break
    finally:
        restore()
    return RunResult(tuple(measured), stopped, clock() - began)


def _collapse(steps: list[Step], plan: StepPlan) -> str | None:
    """Why the last step counts as a collapse, or None."""
    last = steps[-1]
    if last.error_ratio >= plan.stop_errors:
        return f"errors collapsed: {last.error_ratio:.0%} at {last.offered:g} calls/s"
    best = max(s.goodput for s in steps)
    if best > 0 and last.goodput < plan.stop_goodput * best:
        return (
            f"goodput collapsed: {last.goodput:.3g} calls/s (best {best:.3g}) "
            f"at {last.offered:g} offered"
        )
    if len(steps) <= _BASELINE_STEPS - 1:
        return None  # not yet a baseline to compare p99 with
    baseline = statistics.median(s.p99 for s in steps[:_BASELINE_STEPS])
    if baseline > 0 and last.p99 >= plan.stop_p99 * baseline:
        return f"p99 collapsed: {last.p99 * 1000:.3g} ms, {plan.stop_p99:g}x the low-load p99 or more"
    return None
