"""Argument checks and time tolerance shared by the rate limiters (``telemetry.governance.ratelimit``).

Time comparisons tolerate :data:`EPS` (1 ns) so that times built by adding decimal steps
(0.1 + 0.1 + ...) land on the intended side of a boundary.

No argument can make a limiter fail open through float arithmetic: NaN and infinities are refused,
and so is a value whose derived quantities would leave the float range (a rate so small that
``1 / rate`` overflows to infinity, which would admit every call; a window so short that its end
would land before its start within the 1 ns tolerance). The governance rules keep every value far
inside these limits (``telemetry.governance.rules``).
"""

from __future__ import annotations

import math

EPS = 1e-9
"""Tolerance of time comparisons (seconds): absorbs float rounding of summed decimal steps."""

MIN_WINDOW = 1e-6
"""Shortest window (seconds): 1000 times the time tolerance, so a window always ends after it
starts, and ``now / window`` stays finite for any clock."""

_INF = math.inf


def positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def positive_float(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (0 < value < _INF):  # also rejects NaN
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return float(value)


def non_negative_float(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (0 <= value < _INF):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


def seconds_per_call(name: str, rate: float) -> float:
    """``1 / rate``: seconds per call. Refuses a rate so small (sub-normal) that this overflows: an
    infinite interval makes every comparison with it pass, which would admit every call."""
    try:
        seconds = 1.0 / rate
    except (OverflowError, ZeroDivisionError):
        seconds = _INF
    if not seconds < _INF:
        raise ValueError(f"{name} is too small: its inverse overflows, got {rate!r}")
    return seconds


def window_length(value: float) -> float:
    """A window's length in seconds: positive, finite and at least :data:`MIN_WINDOW`."""
    window = positive_float("window", value)
    if window < MIN_WINDOW:
        raise ValueError(f"window must be >= {MIN_WINDOW} seconds, got {value!r}")
    return window
