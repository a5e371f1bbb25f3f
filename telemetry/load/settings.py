"""The load generator's live settings: a small, bounded model, validated like the governance rules.

The value of ``/loadgen/settings`` (JSON; every field optional, a missing one keeps what the load
generator started with from its YAML and environment)::

    {"rate": 40, "scraper_rate": 8,
     "mix": {"place_order": 50, "get_order": 20, "get_stock": 25, "invalid_order": 5},
     "profile": {"kind": "steady"}}
    "profile": {"kind": "step", "from": 10, "to": 80, "step": 10, "hold_seconds": 20}
    "profile": {"kind": "ramp", "from": 10, "to": 80, "over_seconds": 60}

``rate`` is the mix's requests per second under a ``steady`` profile; ``step`` and ``ramp`` set the
rate themselves, from the moment the settings were applied: a step profile starts at ``from`` and
moves by ``step`` toward ``to`` every ``hold_seconds``; a ramp moves linearly from ``from`` to ``to``
over ``over_seconds``; both then hold ``to``. Ranges (closed): rates 0 to :data:`RATE_MAX` per
second (0 pauses), mix weights 0 to :data:`WEIGHT_MAX` with at least one above 0, ``step`` 0.001 to
:data:`RATE_MAX`, ``hold_seconds`` and ``over_seconds`` 0.1 to :data:`SECONDS_MAX`. Anything else (an
unknown field or scenario, a boolean, NaN, a string, a value too large or too deep) is refused with
:class:`~telemetry._validation.RuleError` naming the field, e.g. ``load.profile.to: must be between
0 and 10000, got 1e+308``.

No grpc and no etcd here: the panel validates a form with it, the load generator its etcd key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from telemetry._validation import RuleError, short_repr
from telemetry.governance.rule_parsing import load_json, number_in_range

__all__ = [
    "RATE_MAX",
    "SCENARIOS",
    "SECONDS_MAX",
    "WEIGHT_MAX",
    "LoadSettings",
    "Profile",
    "parse_load",
]

RATE_MAX = 10_000.0
"""Highest offered rate, requests per second (the demo's gateway takes a few hundred)."""
WEIGHT_MAX = 1_000_000.0
SECONDS_MAX = 86_400.0
SCENARIOS = ("place_order", "get_order", "get_stock", "invalid_order")
"""The mix's scenarios (the scraper runs beside the mix at ``scraper_rate``)."""
ProfileKind = Literal["steady", "step", "ramp"]
_PROFILE_FIELDS: dict[str, tuple[str, ...]] = {
    "steady": (),
    "step": ("from", "to", "step", "hold_seconds"),
    "ramp": ("from", "to", "over_seconds"),
}
_ROOT = "load"


@dataclass(frozen=True, kw_only=True)
class Profile:
    """How the mix's rate moves over time once the settings are applied (see the module doc)."""

    kind: ProfileKind = "steady"
    start: float = 0.0
    """``from``: the rate at the start of a step or ramp profile."""
    end: float = 0.0
    """``to``: the rate the profile reaches and then holds."""
    step: float = 0.0
    hold_seconds: float = 0.0
    over_seconds: float = 0.0

    def rate(self, steady: float, elapsed: float) -> float:
        """The mix's rate ``elapsed`` seconds after the settings were applied (``steady``: the
        settings' ``rate``, used by a steady profile)."""
        elapsed = max(0.0, elapsed)
        if self.kind == "step":
            steps = math.floor(elapsed / self.hold_seconds)
            moved = min(abs(self.end - self.start), steps * self.step)
            return self.start + math.copysign(moved, self.end - self.start)
        if self.kind == "ramp":
            share = min(1.0, elapsed / self.over_seconds)
            return self.start + (self.end - self.start) * share
        return steady

    def to_dict(self) -> dict[str, Any]:
        names = {"start": "from", "end": "to"}
        values = {names.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"kind": self.kind, **{k: values[k] for k in _PROFILE_FIELDS[self.kind]}}


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    """What the load generator offers: the mix at ``rate`` (or as its profile says), the scraper
    beside it at ``scraper_rate``."""

    rate: float = 20.0
    scraper_rate: float = 0.0
    mix: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(SCENARIOS, 1.0))
    profile: Profile = field(default_factory=Profile)

    def rate_at(self, elapsed: float) -> float:
        """The mix's rate ``elapsed`` seconds after these settings were applied."""
        return self.profile.rate(self.rate, elapsed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "scraper_rate": self.scraper_rate,
            "mix": dict(self.mix),
            "profile": self.profile.to_dict(),
        }


def parse_load(value: Any, base: LoadSettings | None = None) -> LoadSettings:
    """``value`` (a mapping, or JSON text/bytes, bounded before it is parsed) over ``base``: each
    field it sets replaces the base's. RuleError naming the field for anything invalid."""
    if isinstance(value, str | bytes):
        value = load_json(value, _ROOT, source="/loadgen/settings")
    if not isinstance(value, Mapping):
        raise RuleError(_ROOT, f"must be an object, got {type(value).__name__}")
    _known(value, ("rate", "scraper_rate", "mix", "profile"), _ROOT)
    base = base or LoadSettings()
    return LoadSettings(
        rate=_rate(value, "rate", base.rate, _ROOT),
        scraper_rate=_rate(value, "scraper_rate", base.scraper_rate, _ROOT),
        mix=_mix(value["mix"]) if "mix" in value else base.mix,
        profile=_profile(value["profile"]) if "profile" in value else base.profile,
    )


def _known(value: Mapping[Any, Any], names: tuple[str, ...], path: str) -> None:
    for name in value:
        if name not in names:
            shown = name if isinstance(name, str) and len(name) <= 60 else short_repr(name)
            raise RuleError(f"{path}.{shown}", f"unknown field (known: {', '.join(names)})")


def _rate(value: Mapping[str, Any], name: str, default: float, path: str) -> float:
    if name not in value:
        return default
    return number_in_range(value[name], f"{path}.{name}", 0.0, RATE_MAX)


def _mix(value: Any) -> dict[str, float]:
    path = f"{_ROOT}.mix"
    if not isinstance(value, Mapping):
        raise RuleError(path, f"must be an object, got {type(value).__name__}")
    _known(value, SCENARIOS, path)
    weights = {name: number_in_range(w, f"{path}.{name}", 0.0, WEIGHT_MAX) for name, w in value.items()}
    if not any(weight > 0 for weight in weights.values()):
        raise RuleError(path, "at least one scenario needs a weight above 0")
    return weights


def _profile(value: Any) -> Profile:
    path = f"{_ROOT}.profile"
    if not isinstance(value, Mapping):
        raise RuleError(path, f"must be an object, got {type(value).__name__}")
    kind = value.get("kind", "steady")
    if not isinstance(kind, str) or kind not in _PROFILE_FIELDS:
        raise RuleError(f"{path}.kind", f"must be one of steady, step, ramp, got {short_repr(kind)}")
    fields = _PROFILE_FIELDS[kind]
    _known(value, ("kind", *fields), path)
    missing = [name for name in fields if name not in value]
    if missing:
        raise RuleError(f"{path}.{missing[0]}", f"missing (a {kind} profile needs {', '.join(fields)})")
    limits = {"step": (0.001, RATE_MAX), "hold_seconds": (0.1, SECONDS_MAX),
              "over_seconds": (0.1, SECONDS_MAX)}  # fmt: skip
    numbers = {
        name: number_in_range(value[name], f"{path}.{name}", *limits.get(name, (0.0, RATE_MAX)))
        for name in fields
    }
    return Profile(
        kind=kind,  # type: ignore[arg-type]  # checked against _PROFILE_FIELDS above
        start=numbers.get("from", 0.0),
        end=numbers.get("to", 0.0),
        step=numbers.get("step", 0.0),
        hold_seconds=numbers.get("hold_seconds", 0.0),
        over_seconds=numbers.get("over_seconds", 0.0),
    )
