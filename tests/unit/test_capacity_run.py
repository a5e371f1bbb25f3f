"""The capacity test's steps on a fake clock: bounded in steps, load and time, stopping at a
collapse, restoring the load settings whatever happens; and the report printed for people."""

from __future__ import annotations

import json

import pytest

from telemetry.load.capacity import Step, analyse
from telemetry.load.stepping import RunResult, StepPlan, run_steps
from telemetry.panel.capacity import render
from telemetry.testing.clock import FakeClock


class Service:
    """A service of capacity 100/s whose p99 explodes past it."""

    def __init__(self, capacity: float = 100.0, fail_at: float | None = None) -> None:
        self.capacity, self.fail_at = capacity, fail_at
        self.rates: list[float] = []
        self.restored = 0

    def set_rate(self, rate: float) -> None:
        self.rates.append(rate)

    def measure(self, offered: float, seconds: float) -> Step | None:
        if self.fail_at is not None and offered >= self.fail_at:
            raise RuntimeError("prometheus went away")
        if offered == 30:
            return None  # a step without data is left out
        load = offered / self.capacity
        p99 = 0.01 if load < 0.7 else 0.01 * (1 + 20 * (load - 0.7))
        return Step(offered, min(offered, self.capacity), p99)

    def restore(self) -> None:
        self.restored += 1


def run(plan: StepPlan, service: Service, clock: FakeClock) -> RunResult:
    return run_steps(
        plan, service.set_rate, service.measure, service.restore, clock=clock, sleep=clock.sleep
    )


def test_the_steps_rise_to_the_collapse_and_stop_there() -> None:
    service, clock = Service(), FakeClock()
    plan = StepPlan(start=10, ceiling=300, steps=30, hold_seconds=5, settle_seconds=1, max_seconds=600)
    result = run(plan, service, clock)
    assert result.stopped.startswith("p99 collapsed")
    assert service.rates[:3] == [10, 20, 30] and max(service.rates) < 300
    assert 30 not in [s.offered for s in result.steps]
    assert service.restored == 1
    assert result.seconds == pytest.approx(6 * len(service.rates))


def test_the_ceiling_and_the_time_limit_bound_the_run() -> None:
    service, clock = Service(capacity=10_000), FakeClock()
    result = run(
        StepPlan(start=10, ceiling=50, steps=5, hold_seconds=2, settle_seconds=0), service, clock
    )
    assert service.rates == [10, 20, 30, 40, 50] and result.stopped.startswith("reached the ceiling")
    service = Service(capacity=10_000)
    plan = StepPlan(
        start=10, ceiling=1000, steps=100, hold_seconds=10, settle_seconds=2, max_seconds=180
    )
    result = run(plan, service, clock)
    assert result.stopped.startswith("time limit") and result.seconds <= 180
    assert len(service.rates) == 15 and service.restored == 1


def test_errors_and_goodput_collapse_stop_the_run() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def erring(offered: float, seconds: float) -> Step:
        return Step(offered, offered, 0.01, error_ratio=0.5 if offered >= 40 else 0.0)

    result = run_steps(
        StepPlan(start=10, ceiling=100, steps=10),
        calls.append,
        erring,
        lambda: None,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.stopped.startswith("errors collapsed") and calls[-1] == 40

    def falling(offered: float, seconds: float) -> Step:
        return Step(offered, 50.0 if offered <= 50 else 20.0, 0.01)

    result = run_steps(
        StepPlan(start=10, ceiling=100, steps=10),
        calls.append,
        falling,
        lambda: None,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.stopped.startswith("goodput collapsed")


def test_the_settings_are_restored_after_an_error_or_ctrl_c() -> None:
    service, clock = Service(fail_at=40), FakeClock()
    with pytest.raises(RuntimeError):
        run(StepPlan(start=10, ceiling=100, steps=10), service, clock)
    assert service.restored == 1

    def interrupted(offered: float, seconds: float) -> Step:
        raise KeyboardInterrupt

    service = Service()
    with pytest.raises(KeyboardInterrupt):
        run_steps(
            StepPlan(), service.set_rate, interrupted, service.restore, clock=clock, sleep=clock.sleep
        )
    assert service.restored == 1


def test_the_plan_is_bounded() -> None:
    assert StepPlan(start=10, ceiling=40, steps=4).rates() == [10, 20, 30, 40]
    assert StepPlan(start=5, ceiling=5, steps=1).rates() == [5]
    for bad in (
        {"start": 0},
        {"start": 50, "ceiling": 40},
        {"ceiling": 1e9},
        {"steps": 0},
        {"hold_seconds": 0.5},
        {"stop_p99": 1},
    ):
        with pytest.raises(ValueError):
            StepPlan(**bad)


def test_the_report_has_a_table_the_points_and_a_recommendation() -> None:
    service, clock = Service(), FakeClock()
    result = run(
        StepPlan(start=10, ceiling=200, steps=20, hold_seconds=5, max_seconds=600), service, clock
    )
    points = analyse(result.steps)
    text = render(result, points)
    assert text.splitlines()[0].split()[:3] == ["offered/s", "goodput/s", "p99"]
    assert "stopped: p99 collapsed" in text
    assert any(line.startswith("A: ") for line in text.splitlines())
    assert "recommending" in text
    json.dumps(points.to_dict())
