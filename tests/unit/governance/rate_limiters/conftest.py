"""The rate limiter tests' clock: a FakeClock at T0, so no test sleeps and every count is exact."""

from __future__ import annotations

import pytest

from rate_limiters.support import T0
from telemetry.testing.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
