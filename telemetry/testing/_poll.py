"""Wait for a condition by polling with a deadline: the only way test helpers wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    read: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str,
    interval: float = 0.01,
) -> T:  # fmt: skip
    """``read()`` until ``ready`` accepts it; AssertionError naming ``what`` after ``timeout``.
    Raise ``interval`` when a read is a network call (Prometheus, HTTP)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not arrive within {timeout}s; have {value!r}"[:2000])
        time.sleep(interval)


async def poll_async(
    read: Callable[[], T], ready: Callable[[T], bool], timeout: float, what: str,
    interval: float = 0.01,
) -> T:  # fmt: skip
    """:func:`poll` for asyncio tests: waits without blocking the loop (which may be running the
    very server that will produce what is awaited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not arrive within {timeout}s; have {value!r}")
        await asyncio.sleep(interval)
