"""AdaptiveThrottle: SRE reject probability, go-zero refinements, window expiry, forced pass."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import pytest

from telemetry.governance.throttle import AdaptiveThrottle
from telemetry.testing import FakeClock

BUCKET = 0.25  # window 10 s / 40 buckets


class ScriptedRandom:
    """A random source: queued values first, then ``constant``; fails the test if it has neither."""

    def __init__(self, values: Iterable[float] = (), *, constant: float | None = None) -> None:
        self._queue = deque(values)
        self._constant = constant
        self.draws = 0

    def push(self, *values: float) -> None:
        self._queue.extend(values)

    def __call__(self) -> float:
        self.draws += 1
        if self._queue:
            return self._queue.popleft()
        if self._constant is None:
            raise AssertionError("unexpected random draw")
        return self._constant


def make(clock: FakeClock, random: ScriptedRandom | None = None, **kwargs: Any) -> AdaptiveThrottle:
    return AdaptiveThrottle(clock=clock, random=random or ScriptedRandom(), **kwargs)


def admit_all(throttle: AdaptiveThrottle, count: int) -> None:
    for _ in range(count):
        assert throttle.try_acquire()


def test_healthy_backend_is_never_throttled_and_never_draws() -> None:
    clock = FakeClock()
    rng = ScriptedRandom()  # any draw fails the test
    throttle = make(clock, rng)
    for _ in range(1000):
        assert throttle.try_acquire()
        throttle.on_accepted()
        clock.advance(0.01)
    assert throttle.reject_probability == 0.0
    assert throttle.requests == throttle.accepts == 1000
    assert rng.draws == 0


def test_sre_probability_for_known_counts() -> None:
    clock = FakeClock()
    # min_k == k: no K decay; protected 0: the book's plain formula.
    throttle = make(clock, ScriptedRandom(constant=0.9999), k=2.0, min_k=2.0, protected=0)
    for _ in range(30):
        throttle.on_accepted()
    throttle.on_rejected()  # a reject in the newest bucket: no "working" discount
    admit_all(throttle, 100)
    assert throttle.requests == 100
    assert throttle.accepts == 30
    assert throttle.reject_probability == pytest.approx((100 - 2.0 * 30) / 101)


def test_no_throttling_while_requests_under_k_times_accepts() -> None:
    clock = FakeClock()
    throttle = make(clock, k=2.0, min_k=2.0, protected=0)
    for _ in range(50):
        throttle.on_accepted()
    throttle.on_rejected()
    admit_all(throttle, 100)  # 100 <= 2 * 50
    assert throttle.reject_probability == 0.0


def test_try_acquire_rejects_by_draw_and_counts_every_request() -> None:
    clock = FakeClock()
    rng = ScriptedRandom(constant=0.9999)
    throttle = make(clock, rng, k=2.0, min_k=2.0, protected=0)
    for _ in range(30):
        throttle.on_accepted()
    throttle.on_rejected()
    admit_all(throttle, 100)
    p = (100 - 60) / 101
    assert throttle.reject_probability == pytest.approx(p)
    rng.push(p - 1e-9)  # under p: reject
    assert not throttle.try_acquire()
    assert throttle.requests == 101  # counted although rejected
    p = (101 - 60) / 102
    rng.push(p)  # at p: admit
    assert throttle.try_acquire()
    assert throttle.requests == 102


def test_k_decays_over_consecutive_failing_buckets() -> None:
    clock = FakeClock()
    throttle = make(clock, ScriptedRandom(constant=0.9999), k=1.5, min_k=1.1, buckets=40, protected=5)
    for _ in range(10):
        throttle.on_accepted()
    admit_all(throttle, 50)
    for _ in range(4):  # four buckets that only see rejects
        clock.advance(BUCKET)
        throttle.on_rejected()
    k = 1.5 - (1.5 - 1.1) * 4 / 40
    assert throttle.reject_probability == pytest.approx((50 - 5 - k * 10) / 51)
    throttle.on_accepted()  # an accept in the newest bucket: back to the full K
    assert throttle.reject_probability == pytest.approx((50 - 5 - 1.5 * 11) / 51)


def test_empty_buckets_neither_extend_nor_break_the_failing_run() -> None:
    clock = FakeClock()
    throttle = make(clock, ScriptedRandom(constant=0.9999), k=1.5, min_k=1.1, buckets=40, protected=0)
    for _ in range(10):
        throttle.on_accepted()
    admit_all(throttle, 50)
    clock.advance(BUCKET)
    throttle.on_rejected()
    clock.advance(2 * BUCKET)  # one empty bucket in between
    throttle.on_rejected()
    k = 1.5 - (1.5 - 1.1) * 2 / 40
    assert throttle.reject_probability == pytest.approx((50 - k * 10) / 51)


def test_working_buckets_scale_the_probability_down() -> None:
    clock = FakeClock()
    throttle = make(clock, ScriptedRandom(constant=0.9999), k=2.0, min_k=2.0, buckets=40, protected=0)
    throttle.on_rejected()
    admit_all(throttle, 100)
    for _ in range(4):  # four healthy buckets since the last reject
        clock.advance(BUCKET)
        throttle.on_accepted()
    assert throttle.reject_probability == pytest.approx((100 - 2.0 * 4) / 101 * (40 - 4) / 40)
    throttle.on_rejected()  # a reject ends the healthy run
    assert throttle.reject_probability == pytest.approx((100 - 2.0 * 4) / 101)


def test_protected_requests_pass_without_a_draw() -> None:
    clock = FakeClock()
    rng = ScriptedRandom()
    throttle = make(clock, rng, protected=5)
    throttle.on_rejected()
    # Nothing accepted: p = (requests - 5) / (requests + 1) from the history before each request.
    admit_all(throttle, 6)
    assert rng.draws == 0
    assert throttle.reject_probability == pytest.approx(1 / 7)
    rng.push(0.0)
    assert not throttle.try_acquire()
    assert rng.draws == 1


def test_window_expiry() -> None:
    clock = FakeClock()
    throttle = make(clock, ScriptedRandom(constant=0.9999), k=2.0, min_k=2.0, protected=0)
    throttle.on_rejected()
    admit_all(throttle, 50)
    clock.advance(5.0)
    for _ in range(10):
        throttle.on_accepted()
    throttle.on_rejected()
    admit_all(throttle, 10)
    assert throttle.requests == 60
    assert throttle.reject_probability == pytest.approx((60 - 20) / 61)
    clock.advance(4.999)  # the first batch is still inside the 10 s window
    assert throttle.requests == 60
    clock.advance(0.001)  # ... and now it is out
    assert throttle.requests == 10
    assert throttle.accepts == 10
    assert throttle.reject_probability == 0.0
    clock.advance(100.0)
    assert throttle.requests == throttle.accepts == 0


def test_forced_pass_after_a_quiet_second() -> None:
    clock = FakeClock()
    rng = ScriptedRandom(constant=0.0)  # every draw rejects
    throttle = make(clock, rng)
    throttle.on_rejected()
    admit_all(throttle, 6)  # protected
    assert not throttle.try_acquire()
    clock.advance(0.5)
    assert not throttle.try_acquire()
    draws = rng.draws
    clock.advance(0.5)  # 1 s since the last admission
    assert throttle.reject_probability == pytest.approx((8 - 5) / 9)  # ignores the forced pass
    assert throttle.try_acquire()
    assert rng.draws == draws  # forced: no draw
    assert not throttle.try_acquire()  # the next one is throttled again
    clock.advance(1.0)
    assert throttle.try_acquire()


def test_forced_pass_can_be_disabled() -> None:
    clock = FakeClock()
    throttle = make(clock, ScriptedRandom(constant=0.0), force_pass_after=float("inf"))
    throttle.on_rejected()
    admit_all(throttle, 6)
    clock.advance(5.0)
    assert not throttle.try_acquire()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("k", 0.9),
        ("k", float("inf")),
        ("min_k", 0.5),
        ("min_k", 2.0),
        ("window", 0.0),
        ("buckets", 0),
        ("buckets", 2.0),
        ("protected", -1),
        ("force_pass_after", 0.0),
    ],
)
def test_invalid_arguments_are_rejected(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        AdaptiveThrottle(**{name: value})
