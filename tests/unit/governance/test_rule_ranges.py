"""Every numeric rule field has a closed, documented range, refused outside it.

The table below is the contract docs/governance.md documents: each field's bounds are accepted (and
round trip), just past them is refused naming the field, and for every float field the values that
break float arithmetic are refused too: sub-normal (``1e-310`` calls/s would make ``1 / limit``
infinite), huge, NaN, infinities, integers past the float range. Booleans are never numbers.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from typing import Any

import pytest

from telemetry.governance import rules as model
from telemetry.governance.rules import GovernanceRules, RuleError

SERVER = "rules.server.methods['*']"
CLIENT = "rules.client.methods['*']"


def rate_limit(values: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"methods": {"*": {"rate_limit": {"limit": 10, **values}}}}}


def client(section: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda values: {"client": {"methods": {"*": {section: values}}}}


def server(section: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda values: {"server": {"methods": {"*": {section: values}}}}


def adaptive(values: dict[str, Any]) -> dict[str, Any]:
    return {"adaptive": values}


def defer(values: dict[str, Any]) -> dict[str, Any]:
    return {"client": {"methods": {"*": {"defer": True, "fallback": {"mode": "default"}, **values}}}}


@dataclasses.dataclass(frozen=True)
class Range:
    cls: type
    name: str
    low: float
    high: float
    build: Callable[[dict[str, Any]], dict[str, Any]]
    path: str
    off: bool = False  # 0 is accepted too
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # to satisfy cross-field checks
    extra_low: dict[str, Any] | None = None  # likewise, for the lower bound when it differs
    accepted_low: float | None = None  # the smallest value the cross-field checks leave

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def doc(self, value: Any, *, low: bool = False) -> dict[str, Any]:
        extra = self.extra_low if low and self.extra_low is not None else self.extra
        return self.build({**extra, self.name: value})

    def __str__(self) -> str:
        return f"{self.cls.__name__}.{self.name}"


B, T, R, F = client("breaker"), client("throttle"), client("retry"), server("fallback")
# fmt: off
RANGES = [
    Range(model.BrownoutRule, "share", 0.001, 1.0, server("brownout"), f"{SERVER}.brownout.share",
          off=True),
    Range(model.RateLimitRule, "limit", 0.001, 1e6, rate_limit, f"{SERVER}.rate_limit.limit"),
    Range(model.RateLimitRule, "window", 0.001, 86_400.0, rate_limit, f"{SERVER}.rate_limit.window"),
    Range(model.RateLimitRule, "burst", 1, 1_000_000, rate_limit, f"{SERVER}.rate_limit.burst"),
    Range(model.RateLimitRule, "max_wait", 0.001, 60.0, rate_limit, f"{SERVER}.rate_limit.max_wait",
          off=True),
    Range(model.RateLimitRule, "warm_up", 0.001, 3600.0, rate_limit, f"{SERVER}.rate_limit.warm_up"),
    Range(model.RateLimitRule, "cold_factor", 1.0, 100.0, rate_limit,
          f"{SERVER}.rate_limit.cold_factor"),
    Range(model.RateLimitRule, "max_keys", 1, 1_000_000, rate_limit, f"{SERVER}.rate_limit.max_keys"),
    Range(model.RateLimitRule, "cluster_limit", 0.001, 1e6, rate_limit,
          f"{SERVER}.rate_limit.cluster_limit"),
    Range(model.RateLimitRule, "cluster_burst", 1, 1_000_000, rate_limit,
          f"{SERVER}.rate_limit.cluster_burst"),
    Range(model.BreakerRule, "window_size", 1, 10_000, B, f"{CLIENT}.breaker.window_size"),
    Range(model.BreakerRule, "minimum_calls", 1, 1_000_000, B, f"{CLIENT}.breaker.minimum_calls"),
    Range(model.BreakerRule, "failure_rate_threshold", 0.001, 1.0, B,
          f"{CLIENT}.breaker.failure_rate_threshold"),
    Range(model.BreakerRule, "slow_call_rate_threshold", 0.001, 1.0, B,
          f"{CLIENT}.breaker.slow_call_rate_threshold"),
    Range(model.BreakerRule, "slow_call_duration", 0.001, 3600.0, B,
          f"{CLIENT}.breaker.slow_call_duration"),
    Range(model.BreakerRule, "consecutive_failures", 0, 1_000_000, B,
          f"{CLIENT}.breaker.consecutive_failures"),
    Range(model.BreakerRule, "open_wait", 0.001, 3600.0, B, f"{CLIENT}.breaker.open_wait",
          extra={"max_open_wait": 3600}),
    Range(model.BreakerRule, "max_open_wait", 0.001, 3600.0, B, f"{CLIENT}.breaker.max_open_wait",
          extra={"open_wait": 0.001}),
    Range(model.BreakerRule, "backoff_multiplier", 1.0, 100.0, B,
          f"{CLIENT}.breaker.backoff_multiplier"),
    Range(model.BreakerRule, "half_open_probes", 1, 10_000, B, f"{CLIENT}.breaker.half_open_probes"),
    Range(model.BreakerRule, "ramp_step_duration", 0.001, 3600.0, B,
          f"{CLIENT}.breaker.ramp_step_duration"),
    Range(model.ThrottleRule, "k", 1.0, 100.0, T, f"{CLIENT}.throttle.k"),
    Range(model.ThrottleRule, "window", 0.001, 3600.0, T, f"{CLIENT}.throttle.window"),
    Range(model.ThrottleRule, "protected", 0, 1_000_000, T, f"{CLIENT}.throttle.protected"),
    Range(model.BulkheadRule, "max_concurrent", 1, 1_000_000, client("bulkhead"),
          f"{CLIENT}.bulkhead.max_concurrent"),
    Range(model.RetryRule, "max_attempts", 1, 10, R, f"{CLIENT}.retry.max_attempts"),
    Range(model.RetryRule, "initial_backoff", 0.001, 60.0, R, f"{CLIENT}.retry.initial_backoff",
          off=True, extra={"max_backoff": 60}),
    Range(model.RetryRule, "max_backoff", 0.001, 60.0, R, f"{CLIENT}.retry.max_backoff", off=True,
          extra={"initial_backoff": 0}),
    Range(model.RetryRule, "multiplier", 1.0, 100.0, R, f"{CLIENT}.retry.multiplier"),
    Range(model.RetryRule, "jitter", 0.001, 1.0, R, f"{CLIENT}.retry.jitter", off=True),
    Range(model.RetryRule, "budget_ratio", 0.001, 1.0, R, f"{CLIENT}.retry.budget_ratio", off=True),
    Range(model.RetryRule, "budget_min_per_second", 0.001, 1e6, R,
          f"{CLIENT}.retry.budget_min_per_second", off=True),
    Range(model.FallbackRule, "cache_size", 1, 1_000_000, F, f"{SERVER}.fallback.cache_size"),
    Range(model.FallbackRule, "cache_ttl", 0.001, 86_400.0, F, f"{SERVER}.fallback.cache_ttl"),
    Range(model.ClientMethodRules, "defer_max_items", 1, 100_000, defer, f"{CLIENT}.defer_max_items"),
    Range(model.AdaptiveRule, "cpu_threshold", 0.01, 4.0, adaptive, "rules.adaptive.cpu_threshold",
          extra={"cpu_max": 64}),
    Range(model.AdaptiveRule, "loop_lag_threshold", 0.001, 60.0, adaptive,
          "rules.adaptive.loop_lag_threshold"),
    Range(model.AdaptiveRule, "cool_off", 0.001, 3600.0, adaptive, "rules.adaptive.cool_off", off=True),
    Range(model.AdaptiveRule, "min_limit", 1, 1_000_000, adaptive, "rules.adaptive.min_limit",
          extra={"max_limit": 1_000_000, "initial_limit": 1_000_000}),
    Range(model.AdaptiveRule, "max_limit", 1, 1_000_000, adaptive, "rules.adaptive.max_limit",
          extra={"initial_limit": 1}),
    Range(model.AdaptiveRule, "initial_limit", 1, 1_000_000, adaptive, "rules.adaptive.initial_limit",
          extra={"max_limit": 1_000_000}),
    Range(model.AdaptiveRule, "tolerance", 1.0, 100.0, adaptive, "rules.adaptive.tolerance"),
    # cpu_max must also exceed cpu_threshold, so its smallest accepted value is just above 0.01.
    Range(model.AdaptiveRule, "cpu_max", 0.01, 64.0, adaptive, "rules.adaptive.cpu_max",
          extra={"cpu_threshold": 0.01}, accepted_low=0.02),
    Range(model.AdaptiveRule, "gil_switch_interval", 1e-6, 0.005, adaptive,
          "rules.adaptive.gil_switch_interval", off=True),
    Range(model.AdaptiveRule, "queue_target", 0.0001, 10.0, adaptive, "rules.adaptive.queue_target",
          off=True, extra={"queue_interval": 60}),
    Range(model.AdaptiveRule, "queue_interval", 0.001, 60.0, adaptive, "rules.adaptive.queue_interval",
          extra={"queue_target": 0}),
]
# fmt: on
IDS = [str(r) for r in RANGES]


def refused(data: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_dict(data)
    assert caught.value.__cause__ is None  # a check refused it, not the last-resort guard
    return caught.value


def accepted(data: Any) -> GovernanceRules:
    rules = GovernanceRules.from_dict(data)
    assert GovernanceRules.from_dict(rules.to_dict()) == rules
    assert GovernanceRules.from_json(rules.to_json()) == rules
    return rules


def numeric_fields() -> set[str]:
    """``Class.field`` for every int or float field of every rule class."""
    found = set()
    for name in dir(model):
        cls = getattr(model, name)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            continue
        hints = typing.get_type_hints(cls)
        for spec in dataclasses.fields(cls):
            hint = hints[spec.name]
            if hint in (int, float) or set(typing.get_args(hint)) in (
                {int, type(None)},
                {float, type(None)},
            ):
                found.add(f"{cls.__name__}.{spec.name}")
    return found


def test_every_numeric_field_has_a_tested_range() -> None:
    assert numeric_fields() == set(IDS)


@pytest.mark.parametrize("rng", RANGES, ids=IDS)
def test_the_metadata_matches_the_documented_range(rng: Range) -> None:
    spec = {f.name: f for f in dataclasses.fields(rng.cls)}[rng.name]
    assert spec.metadata == {"min": rng.low, "max": rng.high, "off": rng.off}
    assert rng.name in (rng.cls.__doc__ or "")  # the docstring documents it


@pytest.mark.parametrize("rng", RANGES, ids=IDS)
def test_both_bounds_are_accepted(rng: Range) -> None:
    low = rng.low if rng.accepted_low is None else rng.accepted_low
    for value in (low, rng.high):
        accepted(rng.doc(value, low=value == low))
    if rng.off:
        accepted(rng.doc(0))


@pytest.mark.parametrize("rng", RANGES, ids=IDS)
def test_just_past_either_bound_is_refused(rng: Range) -> None:
    below = rng.low - 1 if rng.integer else rng.low / 2
    above = rng.high + 1 if rng.integer else rng.high * 1.001
    low_error = refused(rng.doc(below, low=True))
    assert low_error.path == rng.path
    if rng.off and below > 0:
        assert f"must be 0 (off) or >= {rng.low}" in str(low_error)
    high_error = refused(rng.doc(above))
    assert high_error.path == rng.path
    assert "must be <= " in str(high_error)


@pytest.mark.parametrize("rng", RANGES, ids=IDS)
@pytest.mark.parametrize(
    "value",
    [
        -1,
        1e-310,
        5e-324,
        -1e-310,
        1e308,
        -1e308,
        math.nan,
        math.inf,
        -math.inf,
        10**400,
        -(10**400),
        True,
        False,
        "1",
        None,
        [1],
        {"x": 1},
    ],
    ids=repr,
)
def test_hostile_numbers_are_refused(rng: Range, value: Any) -> None:
    if value is None and rng.name in ("burst", "cluster_limit", "cluster_burst"):
        # Optional: a burst's None is its default (one second's worth); the cluster fields' None
        # means the limit is no share of a cluster limit.
        accepted(rng.doc(value))
        return
    assert refused(rng.doc(value)).path == rng.path


@pytest.mark.parametrize(
    "rng", [r for r in RANGES if not r.integer], ids=[str(r) for r in RANGES if not r.integer]
)
def test_float_fields_refuse_integers_past_the_float_range(rng: Range) -> None:
    error = refused(rng.doc(10**400))
    assert "must be a finite number, got 1000" in str(error)
    assert len(str(error)) < 200  # the 401 digits are shortened


@pytest.mark.parametrize(
    "rng", [r for r in RANGES if r.integer], ids=[str(r) for r in RANGES if r.integer]
)
def test_integer_fields_refuse_floats_and_huge_integers(rng: Range) -> None:
    assert "must be an integer" in str(refused(rng.doc(float(rng.low))))
    error = refused(rng.doc(10**400))
    assert f"must be <= {rng.high}, got 1000" in str(error)


def test_the_messages_name_the_bounds() -> None:
    assert str(refused(rate_limit({"limit": 1e-310}))) == (
        f"{SERVER}.rate_limit.limit: must be >= 0.001, got 1e-310"
    )
    assert str(refused(rate_limit({"limit": 1e308}))) == (
        f"{SERVER}.rate_limit.limit: must be <= 1e6, got 1e+308"
    )
    # Zero or less: "positive" comes first, which is what was meant (0 is not "off" here).
    assert str(refused(rate_limit({"limit": 0}))) == (
        f"{SERVER}.rate_limit.limit: must be > 0 (at least 0.001), got 0.0"
    )
    assert str(refused(rate_limit({"max_wait": 1e-310}))) == (
        f"{SERVER}.rate_limit.max_wait: must be 0 (off) or >= 0.001, got 1e-310"
    )
    assert str(refused(rate_limit({"max_keys": 2_000_000}))) == (
        f"{SERVER}.rate_limit.max_keys: must be <= 1000000, got 2000000"
    )
    assert str(refused(rate_limit({"limit": math.nan}))) == (
        f"{SERVER}.rate_limit.limit: must be a finite number, got nan"
    )


def test_negative_zero_is_zero() -> None:
    rules = accepted(rate_limit({"max_wait": -0.0}))
    limit = rules.server.methods["*"].rate_limit
    assert limit is not None and limit.max_wait == 0


@pytest.mark.parametrize(
    "steps",
    [
        [1e-310, 1.0],
        [0.0005, 1.0],
        [*(i / 21 for i in range(1, 21)), 1.0],
        [math.nan, 1.0],
        [0.5, math.inf],
    ],
    ids=["sub-normal", "below 0.001", "21 steps", "NaN", "inf"],
)
def test_ramp_steps_are_bounded(steps: list[float]) -> None:
    # NaN and infinities are refused as items, naming their index.
    assert refused(client("breaker")({"ramp_steps": steps})).path.startswith(
        f"{CLIENT}.breaker.ramp_steps"
    )


def test_ramp_steps_at_their_bounds_are_accepted() -> None:
    accepted(client("breaker")({"ramp_steps": [0.001, 1.0]}))
    accepted(client("breaker")({"ramp_steps": [*(i / 20 for i in range(1, 20)), 1.0]}))  # 20 steps


@pytest.mark.parametrize(
    "levels",
    [[1e-310, 0.8, 0.9], [0.005, 0.8, 0.9], [0.7, 0.8, 65], [0.7, 0.8, math.inf], [0.7, math.nan, 0.9]],
    ids=["sub-normal", "below 0.01", "above 64", "inf", "NaN"],
)
def test_shedding_levels_are_bounded(levels: list[float]) -> None:
    assert refused({"shedding": {"levels": levels}}).path.startswith("rules.shedding.levels")


def test_shedding_levels_at_their_bounds_are_accepted() -> None:
    accepted({"shedding": {"levels": [0.01, 0.01, 64]}})
