"""Types shared by the governance algorithms.

Every algorithm is a pure decision object: it never imports grpc, never starts a thread on import,
and takes its clock (monotonic seconds), random source (``random.random``-like) and pressure
samplers as arguments, so unit tests drive them deterministically with ``telemetry.testing.FakeClock``.
Locks are held only for the few lines of bookkeeping, never across a call or an ``await``, so each
object is safe from many threads and from asyncio code alike.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a FakeClock in tests)."""

RandomSource = Callable[[], float]
"""Uniform in [0, 1) (``random.random`` in production)."""

monotonic: Clock = time.monotonic
default_random: RandomSource = random.random
