"""The load generator's open-loop schedule, re-read live: a :class:`LoadPlan` holds the settings in
force (and when they were applied), :func:`run_open_loop` sends on its schedule from a thread.

Open loop: the n-th request goes ``1 / rate`` after the previous one whether or not earlier ones
have answered; a late one is sent at once but never made up twice (no burst after a stall). The
rate is read from the plan before each request, so a ramp or step profile moves the schedule as it
goes. A new setting (:meth:`LoadPlan.use`) wakes the schedule and *resets it from now*: the first
request at the new rate goes at once and the next ``1 / rate`` later, so a change neither drifts by
what was left of the old interval nor sends a burst to catch up. With a rate of 0 the schedule idles
until the next setting (or until the profile raises the rate).

The clock is injected (tests give a :class:`~telemetry.testing.clock.FakeClock`); no grpc, no etcd.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from telemetry.load.settings import LoadSettings

__all__ = ["LoadPlan", "run_open_loop"]

_IDLE = 0.25
"""Longest wait (seconds) before the rate is read again: a profile's rise is seen this fast."""


class LoadPlan:
    """The settings in force, thread-safe; every :meth:`use` is a new generation."""

    def __init__(self, settings: LoadSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._settings = settings
        self._since = clock()
        self._generation = 0
        self._closed = False
        self.scheduled_rate = 0.0
        """The mix's rate the schedule last ran at (what the load generator reports as offered)."""

    @property
    def settings(self) -> LoadSettings:
        return self._settings

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def use(self, settings: LoadSettings) -> None:
        """Put ``settings`` in force from now (a profile starts over) and wake the schedules."""
        with self._changed:
            self._settings = settings
            self._since = self._clock()
            self._generation += 1
            self._changed.notify_all()

    def close(self) -> None:
        """End every schedule running on this plan."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def mix_rate(self, now: float | None = None) -> float:
        """The mix's rate at ``now`` (the clock's time; default: the clock now)."""
        with self._changed:
            settings, since = self._settings, self._since
        return settings.rate_at((self._clock() if now is None else now) - since)

    def current(self, rate_of: Callable[[LoadSettings, float], float]) -> tuple[int, float, float]:
        """(generation, now, ``rate_of(settings, seconds since applied)``), read together."""
        with self._changed:
            settings, since, generation = self._settings, self._since, self._generation
        now = self._clock()
        return generation, now, rate_of(settings, now - since)

    def wait(self, generation: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True at once when the generation is no longer
        ``generation`` (new settings) or the plan is closed."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or self._generation != generation, timeout=max(0.0, timeout)
            )


def mix_rate(settings: LoadSettings, elapsed: float) -> float:
    return settings.rate_at(elapsed)


def run_open_loop(
    plan: LoadPlan,
    send: Callable[[], None],
    rate_of: Callable[[LoadSettings, float], float] = mix_rate,
    *,
    report: bool = True,
) -> None:
    """Call ``send()`` on the plan's schedule until the plan is closed. ``rate_of``: which rate of
    the settings this schedule follows (the mix's by default; the scraper's beside it).
    ``report``: record the rate in ``plan.scheduled_rate``."""
    seen = -1
    last = 0.0  # when the previous request was due
    while not plan.closed:
        generation, now, rate = plan.current(rate_of)
        if report:
            plan.scheduled_rate = rate
        if generation != seen:  # new settings: the schedule starts over from now
            seen, last = generation, now - (1.0 / rate if rate > 0 else 0.0)
        if rate <= 0:
            plan.wait(generation, _IDLE)
            continue
        due = last + 1.0 / rate
        if due > now:
            plan.wait(generation, min(due - now, _IDLE))
            continue
        last = max(due, now - 1.0 / rate)  # late: send now, without making up the missed ones
        send()
