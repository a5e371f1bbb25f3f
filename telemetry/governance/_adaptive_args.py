"""Argument checks of :class:`telemetry.governance.adaptive.AdaptiveLimiter`."""

from __future__ import annotations

from collections.abc import Callable


def validate(
    *,
    pressure: object,
    cpu_threshold: float,
    loop_lag: object,
    loop_lag_threshold: float,
    cool_off: float,
    window: float,
    buckets: int,
    min_limit: int,
    max_limit: int,
    initial_limit: int,
    tolerance: float,
    long_window: int,
    latency_sustain: int,
    cpu_max: float,
) -> None:
    """Raise for the first bad argument: TypeError for a sampler, ValueError for a number."""
    if not callable(pressure):
        raise TypeError("pressure must be a callable returning the CPU fraction")
    if loop_lag is not None and not callable(loop_lag):
        raise TypeError("loop_lag must be a callable returning seconds, or None")
    # (refused, message) in order. Lambdas: a check runs only once the ones before it passed, so the
    # first bad argument is named (a later comparison could raise on a value refused earlier). Keep
    # the `not x > 0` forms: unlike `x <= 0`, they refuse NaN.
    checks: tuple[tuple[Callable[[], bool], str], ...] = (
        (lambda: not cpu_threshold > 0, "cpu_threshold must be > 0"),
        (
            lambda: not cpu_max > cpu_threshold,
            "cpu_max must be > cpu_threshold (the overload factor reaches 0.1 there)",
        ),
        (lambda: not loop_lag_threshold > 0, "loop_lag_threshold must be > 0"),
        (lambda: not cool_off >= 0, "cool_off must be >= 0"),
        (lambda: not window > 0, "window must be > 0"),
        (lambda: buckets < 1, "buckets must be >= 1"),
        (lambda: min_limit < 1, "min_limit must be >= 1"),
        (lambda: max_limit < min_limit, "max_limit must be >= min_limit"),
        (
            lambda: not min_limit <= initial_limit <= max_limit,
            "initial_limit must be between min_limit and max_limit",
        ),
        (lambda: not tolerance >= 1.0, "tolerance must be >= 1.0"),
        (lambda: long_window < 1, "long_window must be >= 1"),
        (lambda: latency_sustain < 1, "latency_sustain must be >= 1"),
    )
    for refused, message in checks:
        if refused():
            raise ValueError(message)
