"""Argument checks of :class:`telemetry.governance.breaker.CircuitBreaker`, one function per group
of settings, called in the constructor's argument order so the first bad argument is the one named.
"""

from __future__ import annotations

import itertools
import math


def _check_rate(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_window(window_type: str, window_size: int, minimum_calls: int) -> None:
    if window_type not in ("count", "time"):
        raise ValueError(f"window_type must be 'count' or 'time', got {window_type!r}")
    _check_int("window_size", window_size, 1)
    _check_int("minimum_calls", minimum_calls, 1)


def check_thresholds(
    failure_rate_threshold: float,
    slow_call_rate_threshold: float,
    slow_call_duration: float,
    consecutive_failures: int,
) -> None:
    _check_rate("failure_rate_threshold", failure_rate_threshold)
    _check_rate("slow_call_rate_threshold", slow_call_rate_threshold)
    _check_positive("slow_call_duration", slow_call_duration)
    _check_int("consecutive_failures", consecutive_failures, 0)


def check_backoff(open_wait: float, max_open_wait: float, backoff_multiplier: float) -> None:
    _check_positive("open_wait", open_wait)
    _check_positive("max_open_wait", max_open_wait)
    if max_open_wait < open_wait:
        raise ValueError(f"max_open_wait must be >= open_wait, got {max_open_wait!r} < {open_wait!r}")
    if not (backoff_multiplier >= 1.0 and math.isfinite(backoff_multiplier)):
        raise ValueError(f"backoff_multiplier must be a finite number >= 1, got {backoff_multiplier!r}")


def check_recovery(
    half_open_probes: int, ramp_steps: tuple[float, ...], ramp_step_duration: float
) -> tuple[float, ...]:
    """Checks the half-open settings; returns the ramp steps as floats."""
    _check_int("half_open_probes", half_open_probes, 1)
    steps = tuple(float(s) for s in ramp_steps)
    if steps and (
        any(not 0.0 < s <= 1.0 for s in steps)
        or any(a >= b for a, b in itertools.pairwise(steps))
        or steps[-1] != 1.0
    ):
        raise ValueError(
            f"ramp_steps must be strictly increasing in (0, 1] and end with 1.0, got {ramp_steps!r}"
        )
    _check_positive("ramp_step_duration", ramp_step_duration)
    return steps
