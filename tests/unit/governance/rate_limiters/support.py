"""What the rate limiter tests share: the start time T0 and the admissions out of some attempts."""

from __future__ import annotations

from telemetry.governance.ratelimit import RateLimiter

T0 = 1000.0


def admitted(limiter: RateLimiter, attempts: int) -> int:
    return sum(limiter.try_acquire() for _ in range(attempts))
