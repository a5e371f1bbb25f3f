"""Retry schedule: how many attempts, and exponential backoff with jitter between them.

A neutral, low-level module: governance's retries (``telemetry.governance.retry``) and the span
exporter's (``telemetry.tracing.export``) follow the same schedule, and neither package may import
the other. Pure computation: nothing here sleeps, so threads and asyncio share it.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RandomSource", "RetryPolicy", "default_random"]

RandomSource = Callable[[], float]
"""Uniform in [0, 1) (``random.random`` in production, scripted in tests)."""

default_random: RandomSource = _random.random


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait before each retry.

    The delay before attempt ``n`` (``n = 2`` is the first retry) is
    ``min(initial_backoff * multiplier ** (n - 2), max_backoff)``, scaled by a uniform factor in
    ``[1 - jitter, 1 + jitter]`` and then capped at ``max_backoff`` again, so ``max_backoff`` is a hard
    ceiling a caller can compare with its deadline.
    """

    max_attempts: int = 3
    """Attempts in total, including the first."""
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.2
    """Relative jitter: 0.2 spreads each delay over +-20%."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if not (self.initial_backoff >= 0.0 and math.isfinite(self.initial_backoff)):
            raise ValueError(
                f"initial_backoff must be a finite number >= 0, got {self.initial_backoff!r}"
            )
        if not (self.max_backoff >= self.initial_backoff and math.isfinite(self.max_backoff)):
            raise ValueError(
                f"max_backoff must be a finite number >= initial_backoff, got {self.max_backoff!r}"
            )
        if not (self.multiplier >= 1.0 and math.isfinite(self.multiplier)):
            raise ValueError(f"multiplier must be a finite number >= 1, got {self.multiplier!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter!r}")

    def backoff(self, attempt: int, random: RandomSource = default_random) -> float:
        """Seconds to wait before attempt number ``attempt`` (2 = first retry; 1, the first, is 0.0).

        ``random`` is drawn once (only when ``jitter > 0``). The attempt limit is not checked here:
        compare ``attempt`` with ``max_attempts`` first.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        if attempt == 1:
            return 0.0
        try:
            base = min(self.initial_backoff * self.multiplier ** (attempt - 2), self.max_backoff)
        except OverflowError:  # a huge attempt number: the cap applies long before
            base = self.max_backoff
        if self.jitter:
            base *= 1.0 + self.jitter * (2.0 * random() - 1.0)
        return min(base, self.max_backoff)
