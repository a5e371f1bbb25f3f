"""Fixtures of the governance engine's tests: a FakeClock, a Governance on it with a fixed CPU
reading (so no sampler thread starts) and no channel factory (so no deferral sender starts), and
the process switch interval put back after every test (adaptive rules set it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from telemetry.governance.engine import Governance
from telemetry.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def gov(clock: FakeClock) -> Governance:
    return Governance(clock=clock, cpu=lambda: 0.1)


@pytest.fixture(autouse=True)
def _restore_switch_interval() -> Iterator[None]:
    saved = sys.getswitchinterval()
    yield
    sys.setswitchinterval(saved)
