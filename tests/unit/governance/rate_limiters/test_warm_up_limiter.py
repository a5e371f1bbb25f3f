"""WarmUpLimiter: it starts cold, its rate rises linearly under sustained traffic (admitting along
the curve), cools down when idle, stays cold under low traffic, and is a plain rate with a cold
factor of one.
"""

from __future__ import annotations

import pytest

from rate_limiters.support import admitted
from telemetry.governance.ratelimit import WarmUpLimiter
from telemetry.testing.clock import FakeClock

# --------------------------------------------------------------------------- warm-up


def test_warm_up_starts_cold(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    assert lim.cold_rate == 10.0
    assert lim.current_rate == 10.0
    assert admitted(lim, 50) == 10  # a cold bucket holds one second at the cold rate
    assert lim.retry_after() == pytest.approx(0.1)


def saturate(lim: WarmUpLimiter, clock: FakeClock, seconds: float) -> int:
    """Attempt a call every 1/64 s (faster than any rate used here) for ``seconds``."""
    total = 0
    for _ in range(round(seconds * 64)):
        clock.advance(1 / 64)
        total += lim.try_acquire()
    return total


def test_warm_up_rate_rises_linearly_under_sustained_traffic(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    assert lim.try_acquire()
    rates = []
    for _ in range(4):
        saturate(lim, clock, 2.5)
        rates.append(lim.current_rate)
    assert rates == pytest.approx([15.0, 20.0, 25.0, 30.0], abs=1e-6)
    saturate(lim, clock, 5.0)
    assert lim.current_rate == 30.0  # stays at the full rate
    assert saturate(lim, clock, 4.0) == pytest.approx(4 * 30, abs=1)


def test_warm_up_admits_along_the_curve(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    # Over the first 10 s the rate averages (10 + 30) / 2 = 20/s, plus the initial cold burst.
    assert saturate(lim, clock, 10.0) == pytest.approx(10 + 200, abs=2)


def test_warm_up_cools_down_when_idle(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    saturate(lim, clock, 12.0)
    assert lim.current_rate == 30.0
    clock.advance(1.0)  # the bucket refills (one second) ...
    assert lim.current_rate == pytest.approx(30.0, abs=0.1)
    clock.advance(5.0)  # ... then each idle second cools by one
    assert lim.current_rate == pytest.approx(20.0, abs=0.1)
    clock.advance(5.0)
    assert lim.current_rate == 10.0
    assert admitted(lim, 100) == 10  # a cold burst again


def test_warm_up_low_traffic_stays_cold(clock: FakeClock) -> None:
    lim = WarmUpLimiter(30.0, warm_up=10.0, cold_factor=3.0, clock=clock)
    for _ in range(30):  # one call a second: far below half the cold rate
        assert lim.try_acquire()
        clock.advance(1.0)
    assert lim.current_rate == 10.0


def test_warm_up_cold_factor_one_is_a_plain_rate(clock: FakeClock) -> None:
    lim = WarmUpLimiter(8.0, cold_factor=1.0, clock=clock)
    assert lim.current_rate == 8.0
    assert admitted(lim, 20) == 8
