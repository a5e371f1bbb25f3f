"""Validation shared by the rules documents of several packages: the error naming a bad field, and
the finite-number check every numeric field gets.

A neutral, low-level module: the governance rules (``telemetry.governance.rules``) and the live
sampling key (``telemetry.tracing.samplers``) both refuse bad input with :class:`RuleError`, and
neither package may import the other.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from telemetry.config import ConfigError

__all__ = ["RuleError", "finite_number", "short_repr"]


class RuleError(ConfigError):
    """A rule is invalid; ``path`` names the field (e.g. ``server.methods['*'].rate_limit.limit``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40
_REPR.maxlevel = 3


def short_repr(value: Any) -> str:
    """``repr(value)`` shortened: a message must stay small whatever the input (a 100 KB string, a
    100,000-deep list)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a failing repr (an int past Python's digit limit) must not crash a refusal
        return f"<{type(value).__name__}>"


def finite_number(value: Any, path: str) -> float:
    """``value`` as a float; RuleError naming ``path`` unless it is a finite int or float (booleans
    are not numbers here, nor integers beyond the float range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(path, f"must be a finite number, got {short_repr(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int past 1.8e308
        number = math.inf
    if not math.isfinite(number):
        raise RuleError(path, f"must be a finite number, got {short_repr(value)}")
    return number
