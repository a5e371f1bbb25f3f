"""Types shared by the governance algorithms.

Every algorithm is a pure decision object: it never imports grpc, never starts a thread on import,
and takes its clock (monotonic seconds), random source (``random.random``-like) and pressure
samplers as arguments, so unit tests drive them deterministically with ``telemetry.testing.FakeClock``.
Locks are held only for the few lines of bookkeeping, never across a call or an ``await``, so each
object is safe from many threads and from asyncio code alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from telemetry.backoff import RandomSource, default_random

__all__ = ["Clock", "RandomSource", "default_random", "monotonic"]

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a FakeClock in tests)."""

monotonic: Clock = time.monotonic
