"""The setting of the panel's automatic rate limit: follow the recommended limit within bounds.

Stored as ``/governance-panel/<service>/autolimit`` (JSON, written through the audited control
plane): ``{"enabled": true, "pattern": "*", "minimum": 20, "maximum": 400}``. While enabled, the
panel's follower writes the recommendation (``thresholds.recommend_limit``), clamped to
[minimum, maximum], as the cluster-wide limit of ``pattern`` (``/governance/<service>/cluster``),
split by the instances across themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telemetry.governance.rules import RuleError, finite_number, validate_pattern

__all__ = ["AutoLimit", "parse_autolimit"]


@dataclass(frozen=True, kw_only=True)
class AutoLimit:
    enabled: bool = False
    pattern: str = "*"
    minimum: float = 1.0
    maximum: float = 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "pattern": self.pattern,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


def parse_autolimit(value: Any) -> AutoLimit:
    """Validate; :class:`RuleError` names the field (``autolimit.maximum: must be >= minimum``)."""
    if value is None:
        return AutoLimit()
    if not isinstance(value, dict):
        raise RuleError("autolimit", f"must be an object, got {type(value).__name__}")
    known = {"enabled", "pattern", "minimum", "maximum"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise RuleError(f"autolimit.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    enabled = value.get("enabled", False)
    if not isinstance(enabled, bool):
        raise RuleError("autolimit.enabled", f"must be true or false, got {enabled!r}")
    pattern = value.get("pattern", "*")
    if not isinstance(pattern, str):
        raise RuleError("autolimit.pattern", f"must be a string, got {pattern!r}")
    validate_pattern(pattern, "autolimit.pattern")
    bounds = {}
    for name, default in (("minimum", 1.0), ("maximum", 1000.0)):
        number = value.get(name, default)
        bounds[name] = finite_number(number, f"autolimit.{name}")
        if number <= 0:
            raise RuleError(f"autolimit.{name}", f"must be > 0, got {number!r}")
    if bounds["maximum"] < bounds["minimum"]:
        raise RuleError("autolimit.maximum", "must be >= minimum")
    return AutoLimit(enabled=enabled, pattern=pattern, **bounds)
