"""The governance rules model: parsing, validation (with the exact field path), round trips.

Every error test checks ``RuleError.path`` exactly, so a message that names the wrong field fails.
Some tests pin rules the mechanisms would refuse at build time (repeated ramp steps, non-finite
numbers ...): the model must refuse them first, so a bad rule never reaches a live call.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Any

import pytest

from telemetry.config import ConfigError
from telemetry.governance.engine import Governance, parse_rules
from telemetry.governance.rules import (
    DEFAULT_FAILURE_CODES,
    DEFAULT_RETRY_CODES,
    GRPC_CODE_NAMES,
    AdaptiveRule,
    BreakerRule,
    BulkheadRule,
    ClientMethodRules,
    ClientRules,
    FallbackRule,
    GovernanceRules,
    RateLimitRule,
    RetryRule,
    RuleError,
    ServerMethodRules,
    ServerRules,
    SheddingRule,
    ThrottleRule,
)
from telemetry.testing import FakeClock

SERVER = "rules.server.methods['*']"
CLIENT = "rules.client.methods['*']"

# Every field of every rule class, none at its default value.
FULL: dict[str, Any] = {
    "enabled": False,
    "server": {
        "methods": {
            "*": {
                "rate_limit": {
                    "algorithm": "leaky_bucket",
                    "limit": 50.0,
                    "window": 2.0,
                    "burst": 5,
                    "max_wait": 0.5,
                    "warm_up": 20.0,
                    "cold_factor": 4.0,
                    "key": "metadata:user",
                    "allow": ["vip", "ops"],
                    "max_keys": 100,
                    "cluster": True,
                },
                "priority": "low",
                "write": True,
                "fallback": {"mode": "last_good", "on": ["limit"], "cache_size": 16, "cache_ttl": 30.0},
            },
            "pkg.Svc/*": {"rate_limit": None, "priority": "high", "write": False, "fallback": None},
            "pkg.Svc/Get": {
                "rate_limit": {
                    "algorithm": "warm_up",
                    "limit": 7.5,
                    "window": 1.0,
                    "burst": None,
                    "max_wait": 0.0,
                    "warm_up": 5.0,
                    "cold_factor": 1.0,
                    "key": "",
                    "allow": [],
                    "max_keys": 10,
                    "cluster": False,
                },
                "priority": "critical",
                "write": False,
                "fallback": None,
            },
        }
    },
    "client": {
        "methods": {
            "pkg.Svc/*": {
                "breaker": {
                    "window_type": "time",
                    "window_size": 30,
                    "minimum_calls": 5,
                    "failure_rate_threshold": 0.25,
                    "slow_call_rate_threshold": 0.75,
                    "slow_call_duration": 0.5,
                    "consecutive_failures": 3,
                    "open_wait": 2.0,
                    "max_open_wait": 30.0,
                    "backoff_multiplier": 1.5,
                    "half_open_probes": 2,
                    "ramp_steps": [0.2, 1.0],
                    "ramp_step_duration": 4.0,
                    "failure_codes": ["UNAVAILABLE", "ABORTED"],
                    "force": "closed",
                },
                "throttle": {"k": 2.0, "window": 20.0, "protected": 10},
                "bulkhead": {"max_concurrent": 8},
                "retry": {
                    "max_attempts": 4,
                    "initial_backoff": 0.1,
                    "max_backoff": 2.0,
                    "multiplier": 3.0,
                    "jitter": 0.5,
                    "codes": ["UNAVAILABLE"],
                    "budget_ratio": 0.2,
                    "budget_min_per_second": 2.0,
                },
                "idempotent": True,
                "fallback": {
                    "mode": "fast_path",
                    "on": ["breaker", "failure"],
                    "cache_size": 8,
                    "cache_ttl": 60.0,
                },
                "defer": True,
                "defer_max_items": 50,
            }
        }
    },
    "adaptive": {
        "enabled": True,
        "cpu_threshold": 0.6,
        "loop_lag_threshold": 0.1,
        "cool_off": 2.0,
        "min_limit": 2,
        "max_limit": 500,
        "initial_limit": 30,
        "tolerance": 2.0,
        "cpu_max": 1.5,
        "gil_switch_interval": 0.001,
        "queue_target": 0.01,
        "queue_interval": 0.2,
    },
    "shedding": {"enabled": True, "levels": [0.5, 0.6, 0.95]},
}


def server(rule: Mapping[str, Any], pattern: str = "*") -> dict[str, Any]:
    return {"server": {"methods": {pattern: rule}}}


def client(rule: Mapping[str, Any], pattern: str = "*") -> dict[str, Any]:
    return {"client": {"methods": {pattern: rule}}}


def rate_limit(**fields: Any) -> dict[str, Any]:
    return server({"rate_limit": {"limit": 10, **fields}})


def breaker(**fields: Any) -> dict[str, Any]:
    return client({"breaker": fields})


def refused(data: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_dict(data)
    return caught.value


# -- defaults and round trips ------------------------------------------------------------------


def test_defaults_round_trip_through_dict_and_json() -> None:
    rules = GovernanceRules()
    assert GovernanceRules.from_dict(rules.to_dict()) == rules
    assert GovernanceRules.from_json(rules.to_json()) == rules
    assert GovernanceRules.from_dict({}) == rules


def test_default_values() -> None:
    rules = GovernanceRules()
    assert rules.enabled is True
    assert dict(rules.server.methods) == {}
    assert dict(rules.client.methods) == {}
    assert rules.adaptive == AdaptiveRule()
    assert rules.adaptive.enabled is False
    assert rules.shedding == SheddingRule()
    assert rules.shedding.levels == (0.7, 0.8, 0.9)
    assert BreakerRule().failure_codes == DEFAULT_FAILURE_CODES
    assert RetryRule().codes == DEFAULT_RETRY_CODES
    assert set(DEFAULT_FAILURE_CODES) <= set(GRPC_CODE_NAMES)
    assert set(DEFAULT_RETRY_CODES) <= set(GRPC_CODE_NAMES)


def test_to_dict_is_plain_json_data() -> None:
    dumped = GovernanceRules.from_dict(FULL).to_dict()
    assert type(dumped["server"]["methods"]) is dict  # not the read-only mapping proxy
    assert dumped["client"]["methods"]["pkg.Svc/*"]["breaker"]["ramp_steps"] == [0.2, 1.0]
    assert json.loads(json.dumps(dumped)) == dumped


def test_to_json_sorts_keys_and_parses_back() -> None:
    rules = GovernanceRules.from_dict(FULL)
    text = rules.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True)
    assert GovernanceRules.from_json(text) == rules
    assert GovernanceRules.from_json(text.encode()) == rules  # bytes too


def test_full_example_round_trips_exactly() -> None:
    rules = GovernanceRules.from_dict(FULL)
    # FULL sets every field of every rule class: when the model grows a field, add it to FULL.
    assert rules.to_dict() == FULL
    assert GovernanceRules.from_dict(rules.to_dict()) == rules
    assert GovernanceRules.from_json(json.dumps(FULL)) == rules


def test_every_rule_class_parses_a_full_example() -> None:
    rules = GovernanceRules.from_dict(FULL)
    assert rules.enabled is False
    assert isinstance(rules.server, ServerRules)
    assert isinstance(rules.client, ClientRules)
    assert list(rules.server.methods) == ["*", "pkg.Svc/*", "pkg.Svc/Get"]
    assert rules.server.methods["*"] == ServerMethodRules(
        rate_limit=RateLimitRule(
            algorithm="leaky_bucket", limit=50.0, window=2.0, burst=5, max_wait=0.5, warm_up=20.0,
            cold_factor=4.0, key="metadata:user", allow=("vip", "ops"), max_keys=100, cluster=True,
        ),
        priority="low",
        write=True,
        fallback=FallbackRule(mode="last_good", on=("limit",), cache_size=16, cache_ttl=30.0),
    )  # fmt: skip
    assert rules.server.methods["pkg.Svc/*"] == ServerMethodRules(priority="high")
    assert rules.server.methods["pkg.Svc/Get"] == ServerMethodRules(
        rate_limit=RateLimitRule(
            algorithm="warm_up", limit=7.5, warm_up=5.0, cold_factor=1.0, max_keys=10
        ),
        priority="critical",
    )
    assert rules.client.methods["pkg.Svc/*"] == ClientMethodRules(
        breaker=BreakerRule(
            window_type="time", window_size=30, minimum_calls=5, failure_rate_threshold=0.25,
            slow_call_rate_threshold=0.75, slow_call_duration=0.5, consecutive_failures=3,
            open_wait=2.0, max_open_wait=30.0, backoff_multiplier=1.5, half_open_probes=2,
            ramp_steps=(0.2, 1.0), ramp_step_duration=4.0, failure_codes=("UNAVAILABLE", "ABORTED"),
            force="closed",
        ),
        throttle=ThrottleRule(k=2.0, window=20.0, protected=10),
        bulkhead=BulkheadRule(max_concurrent=8),
        retry=RetryRule(
            max_attempts=4, initial_backoff=0.1, max_backoff=2.0, multiplier=3.0, jitter=0.5,
            codes=("UNAVAILABLE",), budget_ratio=0.2, budget_min_per_second=2.0,
        ),
        idempotent=True,
        fallback=FallbackRule(mode="fast_path", on=("breaker", "failure"), cache_size=8, cache_ttl=60.0),
        defer=True,
        defer_max_items=50,
    )  # fmt: skip
    assert rules.adaptive == AdaptiveRule(
        enabled=True, cpu_threshold=0.6, loop_lag_threshold=0.1, cool_off=2.0, min_limit=2,
        max_limit=500, initial_limit=30, tolerance=2.0, cpu_max=1.5, gil_switch_interval=0.001,
        queue_target=0.01, queue_interval=0.2,
    )  # fmt: skip
    assert rules.shedding == SheddingRule(enabled=True, levels=(0.5, 0.6, 0.95))


def test_parsed_values_have_the_model_types() -> None:
    rules = GovernanceRules.from_dict(rate_limit(limit=10, allow=["a"]))
    limit = rules.server.methods["*"].rate_limit
    assert limit is not None
    assert type(limit.limit) is float  # an integer is accepted for a number and stored as float
    assert limit.allow == ("a",)  # lists become tuples: the rules are hashable
    hash(limit)
    assert isinstance(rules.server.methods, types.MappingProxyType)
    with pytest.raises(TypeError):
        rules.server.methods["x"] = ServerMethodRules()  # type: ignore[index]


def test_input_is_not_mutated() -> None:
    data = json.loads(json.dumps(FULL))
    GovernanceRules.from_dict(data)
    assert data == FULL


@pytest.mark.parametrize("pattern", ["*", "pkg.Svc/*", "pkg.Svc/Method", "Svc/M", "a.b.c.Svc/Get_V2"])
def test_valid_method_patterns(pattern: str) -> None:
    rules = GovernanceRules.from_dict({**server({"priority": "high"}, pattern), **client({}, pattern)})
    assert list(rules.server.methods) == [pattern]
    assert list(rules.client.methods) == [pattern]


@pytest.mark.parametrize("key", ["", "peer", "metadata:x", "baggage:user", "metadata:x-tenant-id"])
def test_valid_limit_keys(key: str) -> None:
    rules = GovernanceRules.from_dict(rate_limit(key=key))
    limit = rules.server.methods["*"].rate_limit
    assert limit is not None
    assert limit.key == key


@pytest.mark.parametrize(
    "algorithm",
    ["concurrency", "fixed_window", "sliding_window", "token_bucket", "leaky_bucket", "warm_up"],
)
def test_every_algorithm_is_accepted(algorithm: str) -> None:
    limit = GovernanceRules.from_dict(rate_limit(algorithm=algorithm)).server.methods["*"].rate_limit
    assert limit is not None
    assert limit.algorithm == algorithm


def test_boundary_values_are_accepted() -> None:
    rules = GovernanceRules.from_dict(
        {
            **server({"rate_limit": {"limit": 0.001, "max_wait": 60, "cold_factor": 1, "burst": 1}}),
            **breaker(failure_rate_threshold=1.0, consecutive_failures=0, open_wait=5, max_open_wait=5),
            "adaptive": {
                "min_limit": 7,
                "max_limit": 7,
                "initial_limit": 7,
                "cool_off": 0,
                "cpu_threshold": 4.0,
                "cpu_max": 64,
                "gil_switch_interval": 0,
                "queue_target": 0,
            },
            "shedding": {"levels": [0.5, 0.5, 0.5]},
        }
    )
    limit = rules.server.methods["*"].rate_limit
    assert limit is not None
    assert limit.max_wait == 60.0
    assert rules.adaptive.cool_off == 0.0
    assert rules.adaptive.gil_switch_interval == 0.0
    assert rules.adaptive.queue_target == 0.0


def test_defer_with_an_answering_fallback_is_accepted() -> None:
    for mode in ("default", "fast_path"):
        rule = GovernanceRules.from_dict(client({"defer": True, "fallback": {"mode": mode}}))
        assert rule.client.methods["*"].defer is True


def test_all_status_codes_are_known() -> None:
    rules = GovernanceRules.from_dict(
        client({"breaker": {"failure_codes": list(GRPC_CODE_NAMES)}, "retry": {"codes": []}})
    )
    rule = rules.client.methods["*"]
    assert rule.breaker is not None
    assert rule.breaker.failure_codes == GRPC_CODE_NAMES
    assert rule.retry is not None
    assert rule.retry.codes == ()


# -- errors name the field ----------------------------------------------------------------------

ERRORS: list[tuple[str, Any, str, str]] = [
    # (id, data, RuleError.path, a fragment of the message)
    ("top-level not an object", [], "rules", "must be an object"),
    ("unknown top-level field", {"enabled": True, "bogus": 1}, "rules.bogus", "unknown field"),
    ("first unknown field by name", {"zeta": 1, "alpha": 2}, "rules.alpha", "unknown field"),
    ("unknown field in adaptive", {"adaptive": {"cpu": 0.5}}, "rules.adaptive.cpu", "unknown field"),
    ("unknown field in server", {"server": {"rules": {}}}, "rules.server.rules", "unknown field"),
    (
        "unknown field in a method rule",
        server({"rate_limti": {"limit": 1}}),
        f"{SERVER}.rate_limti",
        "unknown field",
    ),
    ("unknown field in rate_limit", rate_limit(bogus=2), f"{SERVER}.rate_limit.bogus", "unknown field"),
    ("unknown field in breaker", breaker(size=3), f"{CLIENT}.breaker.size", "unknown field"),
    ("server not an object", {"server": "x"}, "rules.server", "must be an object"),
    ("methods not an object", {"server": {"methods": []}}, "rules.server.methods", "must be an object"),
    ("method rule not an object", server(1), SERVER, "must be an object"),  # type: ignore[arg-type]
    (
        "string for number",
        rate_limit(limit="10"),
        f"{SERVER}.rate_limit.limit",
        "must be a finite number",
    ),
    ("bool for number", rate_limit(limit=True), f"{SERVER}.rate_limit.limit", "must be a finite number"),
    ("float for int", breaker(window_size=2.5), f"{CLIENT}.breaker.window_size", "must be an integer"),
    ("whole float for int", breaker(window_size=20.0), f"{CLIENT}.breaker.window_size", "integer"),
    ("bool for int", rate_limit(max_keys=True), f"{SERVER}.rate_limit.max_keys", "must be an integer"),
    ("float for optional int", rate_limit(burst=2.5), f"{SERVER}.rate_limit.burst", "integer"),
    ("number for bool", {"enabled": 1}, "rules.enabled", "must be true or false"),
    ("string for bool", server({"write": "yes"}), f"{SERVER}.write", "must be true or false"),
    ("number for string", rate_limit(key=5), f"{SERVER}.rate_limit.key", "must be a string"),
    ("string for list", rate_limit(allow="vip"), f"{SERVER}.rate_limit.allow", "must be a list"),
    ("wrong list item", rate_limit(allow=["a", 2]), f"{SERVER}.rate_limit.allow[1]", "string"),
    (
        "limit 0",
        rate_limit(limit=0),
        f"{SERVER}.rate_limit.limit",
        "must be > 0 (at least 0.001), got 0.0",
    ),
    (
        "negative limit",
        rate_limit(limit=-1),
        f"{SERVER}.rate_limit.limit",
        "must be > 0 (at least 0.001)",
    ),
    ("window 0", rate_limit(window=0), f"{SERVER}.rate_limit.window", "must be > 0 (at least 0.001)"),
    (
        "negative max_wait",
        rate_limit(max_wait=-0.1),
        f"{SERVER}.rate_limit.max_wait",
        "must be >= 0, got -0.1",
    ),
    ("max_wait above 60", rate_limit(max_wait=61), f"{SERVER}.rate_limit.max_wait", "<= 60.0"),
    ("cold_factor below 1", rate_limit(cold_factor=0.5), f"{SERVER}.rate_limit.cold_factor", ">= 1.0"),
    ("max_keys 0", rate_limit(max_keys=0), f"{SERVER}.rate_limit.max_keys", "must be >= 1, got 0"),
    ("burst 0", rate_limit(burst=0), f"{SERVER}.rate_limit.burst", "must be >= 1"),
    (
        "failure_rate_threshold 1.5",
        breaker(failure_rate_threshold=1.5),
        f"{CLIENT}.breaker.failure_rate_threshold",
        "must be <= 1.0",
    ),
    (
        "failure_rate_threshold 0",
        breaker(failure_rate_threshold=0),
        f"{CLIENT}.breaker.failure_rate_threshold",
        "must be > 0 (at least 0.001), got 0.0",
    ),
    (
        "negative consecutive_failures",
        breaker(consecutive_failures=-1),
        f"{CLIENT}.breaker.consecutive_failures",
        "must be >= 0, got -1",
    ),
    ("window_size 0", breaker(window_size=0), f"{CLIENT}.breaker.window_size", "must be >= 1, got 0"),
    ("throttle k below 1", client({"throttle": {"k": 0.9}}), f"{CLIENT}.throttle.k", ">= 1.0"),
    (
        "bulkhead 0",
        client({"bulkhead": {"max_concurrent": 0}}),
        f"{CLIENT}.bulkhead.max_concurrent",
        "must be >= 1, got 0",
    ),
    (
        "retry max_attempts 0",
        client({"retry": {"max_attempts": 0}}),
        f"{CLIENT}.retry.max_attempts",
        ">= 1",
    ),
    ("retry jitter 1.5", client({"retry": {"jitter": 1.5}}), f"{CLIENT}.retry.jitter", "<= 1.0"),
    (
        "fallback cache_size 0",
        server({"fallback": {"cache_size": 0}}),
        f"{SERVER}.fallback.cache_size",
        "must be >= 1, got 0",
    ),
    (
        "cpu_threshold above 4",
        {"adaptive": {"cpu_threshold": 4.5}},
        "rules.adaptive.cpu_threshold",
        "<= 4.0",
    ),
    ("algorithm nope", rate_limit(algorithm="nope"), f"{SERVER}.rate_limit.algorithm", "must be one of"),
    ("window_type", breaker(window_type="sliding"), f"{CLIENT}.breaker.window_type", "must be one of"),
    ("force half", breaker(force="half"), f"{CLIENT}.breaker.force", "must be one of"),
    ("priority", server({"priority": "urgent"}), f"{SERVER}.priority", "must be one of"),
    (
        "fallback mode",
        server({"fallback": {"mode": "cache"}}),
        f"{SERVER}.fallback.mode",
        "must be one of",
    ),
    (
        "fallback trigger",
        server({"fallback": {"on": ["limit", "timeout"]}}),
        f"{SERVER}.fallback.on[1]",
        "must be one of",
    ),
    ("pattern x", server({}, "x"), "rules.server.methods['x']", "method pattern"),
    ("pattern a/b/c", server({}, "a/b/c"), "rules.server.methods['a/b/c']", "method pattern"),
    ("pattern */M", server({}, "*/M"), "rules.server.methods['*/M']", "method pattern"),
    ("pattern */*", server({}, "*/*"), "rules.server.methods['*/*']", "method pattern"),
    ("pattern pkg.*/M", server({}, "pkg.*/M"), "rules.server.methods['pkg.*/M']", "method pattern"),
    ("pattern no method", server({}, "pkg.Svc/"), "rules.server.methods['pkg.Svc/']", "method pattern"),
    ("pattern leading /", server({}, "/pkg.Svc/M"), "rules.server.methods['/pkg.Svc/M']", "pattern"),
    ("pattern empty", server({}, ""), "rules.server.methods['']", "method pattern"),
    ("client pattern", client({}, "a/b/c"), "rules.client.methods['a/b/c']", "method pattern"),
    (
        "unknown failure code",
        breaker(failure_codes=["UNAVAILABLE", "BOGUS"]),
        f"{CLIENT}.breaker.failure_codes",
        "unknown gRPC status code 'BOGUS'",
    ),
    (
        "lowercase failure code",
        breaker(failure_codes=["unavailable"]),
        f"{CLIENT}.breaker.failure_codes",
        "unknown gRPC status code",
    ),
    (
        "OK is not a retry code",
        client({"retry": {"codes": ["OK"]}}),
        f"{CLIENT}.retry.codes",
        "unknown gRPC status code 'OK'",
    ),
    (
        "ramp_steps not rising",
        breaker(ramp_steps=[0.5, 0.25, 1.0]),
        f"{CLIENT}.breaker.ramp_steps",
        "must rise",
    ),
    (
        "ramp_steps not ending at 1",
        breaker(ramp_steps=[0.1, 0.5]),
        f"{CLIENT}.breaker.ramp_steps",
        "end at 1.0",
    ),
    ("ramp_steps empty", breaker(ramp_steps=[]), f"{CLIENT}.breaker.ramp_steps", "must rise"),
    ("ramp_steps zero", breaker(ramp_steps=[0, 1.0]), f"{CLIENT}.breaker.ramp_steps", "must rise"),
    ("ramp_steps above 1", breaker(ramp_steps=[0.5, 1.5]), f"{CLIENT}.breaker.ramp_steps", "must rise"),
    (
        "max_open_wait < open_wait",
        breaker(open_wait=10, max_open_wait=5),
        f"{CLIENT}.breaker.max_open_wait",
        ">= open_wait",
    ),
    (
        "open_wait above the default max_open_wait",
        breaker(open_wait=61),
        f"{CLIENT}.breaker.max_open_wait",
        ">= open_wait",
    ),
    (
        "cpu_max not above cpu_threshold",
        {"adaptive": {"cpu_threshold": 1.5, "cpu_max": 1.5}},
        "rules.adaptive.cpu_max",
        "> cpu_threshold",
    ),
    (
        "cpu_threshold above the default cpu_max",
        {"adaptive": {"cpu_threshold": 2.5}},
        "rules.adaptive.cpu_max",
        "> cpu_threshold",
    ),
    ("cpu_max above 64", {"adaptive": {"cpu_max": 65}}, "rules.adaptive.cpu_max", "<= 64.0"),
    (
        "gil_switch_interval above 5 ms",
        {"adaptive": {"gil_switch_interval": 0.01}},
        "rules.adaptive.gil_switch_interval",
        "<= 0.005",
    ),
    (
        "negative gil_switch_interval",
        {"adaptive": {"gil_switch_interval": -0.001}},
        "rules.adaptive.gil_switch_interval",
        "must be >= 0, got -0.001",
    ),
    (
        "queue_target not below queue_interval",
        {"adaptive": {"queue_target": 0.5, "queue_interval": 0.5}},
        "rules.adaptive.queue_interval",
        "> queue_target",
    ),
    (
        "zero queue_interval",
        {"adaptive": {"queue_interval": 0}},
        "rules.adaptive.queue_interval",
        "must be > 0 (at least 0.001)",
    ),
    (
        "min_limit > max_limit",
        {"adaptive": {"min_limit": 10, "max_limit": 5}},
        "rules.adaptive.min_limit",
        "<= max_limit",
    ),
    (
        "shedding levels falling",
        {"shedding": {"levels": [0.9, 0.8, 0.7]}},
        "rules.shedding.levels",
        "rising",
    ),
    (
        "shedding level 0",
        {"shedding": {"levels": [0, 0.8, 0.9]}},
        "rules.shedding.levels",
        "rising",
    ),
    (
        "shedding two levels",
        {"shedding": {"levels": [0.7, 0.8]}},
        "rules.shedding.levels",
        "must have 3 items",
    ),
    ("key header:x", rate_limit(key="header:x"), f"{SERVER}.rate_limit.key", "'metadata:<name>'"),
    ("key user", rate_limit(key="user"), f"{SERVER}.rate_limit.key", "'peer'"),
    ("key metadata", rate_limit(key="metadata"), f"{SERVER}.rate_limit.key", "'baggage:<name>'"),
    ("key PEER", rate_limit(key="PEER"), f"{SERVER}.rate_limit.key", "'peer'"),
    ("limit missing", server({"rate_limit": {}}), f"{SERVER}.rate_limit.limit", "is required"),
    (
        "limit missing with other fields",
        server({"rate_limit": {"algorithm": "fixed_window", "window": 2}}),
        f"{SERVER}.rate_limit.limit",
        "is required",
    ),
    (
        "defer without a fallback",
        client({"defer": True}),
        f"{CLIENT}.defer",
        "needs a fallback",
    ),
    (
        "defer with a last_good fallback",
        client({"defer": True, "fallback": {"mode": "last_good"}}),
        f"{CLIENT}.defer",
        "'default' or 'fast_path'",
    ),
    (
        "defer_max_items 0",
        client({"defer": True, "fallback": {"mode": "default"}, "defer_max_items": 0}),
        f"{CLIENT}.defer_max_items",
        "must be >= 1, got 0",
    ),
    ("bulkhead size missing", client({"bulkhead": {}}), f"{CLIENT}.bulkhead.max_concurrent", "required"),
]


@pytest.mark.parametrize(
    ("data", "path", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_name_the_field(data: Any, path: str, fragment: str) -> None:
    error = refused(data)
    assert error.path == path
    assert fragment in str(error)
    assert str(error).startswith(f"{path}: ")


def test_rule_error_is_a_config_error() -> None:
    error = refused({"bogus": 1})
    assert isinstance(error, ConfigError)
    assert "known: adaptive, client, enabled, server, shedding" in str(error)


def test_a_bad_field_anywhere_refuses_the_whole_rule_set() -> None:
    data = json.loads(json.dumps(FULL))
    data["client"]["methods"]["pkg.Svc/*"]["retry"]["codes"] = ["NOPE"]
    assert refused(data).path == "rules.client.methods['pkg.Svc/*'].retry.codes"


@pytest.mark.parametrize(
    "text", ["", "{", "{'enabled': true}", "not json", b"\xff\xfe{", '{"enabled": true,}']
)
def test_invalid_json_text(text: str | bytes) -> None:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_json(text)
    assert caught.value.path == "rules"
    assert "not valid JSON" in str(caught.value)


@pytest.mark.parametrize("text", ["[]", "null", "3", '"rules"'])
def test_json_that_is_not_an_object(text: str) -> None:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_json(text)
    assert caught.value.path == "rules"
    assert "must be an object" in str(caught.value)


def test_json_errors_name_the_field_too() -> None:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_json(json.dumps(rate_limit(limit=0)))
    assert caught.value.path == f"{SERVER}.rate_limit.limit"


# -- rules built in code are re-validated ------------------------------------------------------

CODE_BUILT: list[tuple[str, GovernanceRules, str]] = [
    (
        "limit 0",
        GovernanceRules(
            server=ServerRules(methods={"*": ServerMethodRules(rate_limit=RateLimitRule(limit=0))})
        ),
        f"{SERVER}.rate_limit.limit",
    ),
    (
        "bad pattern",
        GovernanceRules(server=ServerRules(methods={"a/b/c": ServerMethodRules()})),
        "rules.server.methods['a/b/c']",
    ),
    (
        "bad ramp",
        GovernanceRules(
            client=ClientRules(methods={"*": ClientMethodRules(breaker=BreakerRule(ramp_steps=(0.5,)))})
        ),
        f"{CLIENT}.breaker.ramp_steps",
    ),
    (
        "bad choice",
        GovernanceRules(
            server=ServerRules(
                methods={"*": ServerMethodRules(rate_limit=RateLimitRule(limit=1, algorithm="x"))}  # type: ignore[arg-type]
            )
        ),
        f"{SERVER}.rate_limit.algorithm",
    ),
    (
        "bad key",
        GovernanceRules(
            server=ServerRules(
                methods={"*": ServerMethodRules(rate_limit=RateLimitRule(limit=1, key="header:x"))}
            )
        ),
        f"{SERVER}.rate_limit.key",
    ),
    (
        "min above max",
        GovernanceRules(adaptive=AdaptiveRule(min_limit=10, max_limit=5)),
        "rules.adaptive.min_limit",
    ),
    ("wrong type", GovernanceRules(enabled="yes"), "rules.enabled"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("rules", "path"), [c[1:] for c in CODE_BUILT], ids=[c[0] for c in CODE_BUILT])
def test_rules_built_in_code_are_revalidated_by_parse_rules(rules: GovernanceRules, path: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules(rules)
    assert caught.value.path == path


@pytest.mark.parametrize(("rules", "path"), [c[1:] for c in CODE_BUILT], ids=[c[0] for c in CODE_BUILT])
def test_rules_built_in_code_are_revalidated_by_apply(rules: GovernanceRules, path: str) -> None:
    gov = Governance(clock=FakeClock(), cpu=lambda: 0.1)
    before = gov.rules
    with pytest.raises(RuleError) as caught:
        gov.apply(rules)
    assert caught.value.path == path
    assert gov.rules is before
    assert gov.generation == 0


def test_valid_rules_built_in_code_are_accepted() -> None:
    rules = GovernanceRules(
        server=ServerRules(methods={"pkg.Svc/M": ServerMethodRules(rate_limit=RateLimitRule(limit=5))})
    )
    parsed = parse_rules(rules)
    assert parsed == rules
    assert parse_rules(parsed.to_dict()) == rules


# -- known bugs: accepted by the rules, refused (or ignored) by the mechanisms --------------------


@pytest.mark.parametrize("key", ["metadata:", "baggage:"])
def test_limit_key_needs_a_name(key: str) -> None:
    assert refused(rate_limit(key=key)).path == f"{SERVER}.rate_limit.key"


def test_partial_method_wildcard_is_refused() -> None:
    assert refused(server({}, "pkg.Svc/Get*")).path == "rules.server.methods['pkg.Svc/Get*']"


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_json(json.dumps(rate_limit(limit=float(value))))  # NaN / Infinity
    assert caught.value.path == f"{SERVER}.rate_limit.limit"


def test_repeated_ramp_steps_are_refused() -> None:
    assert refused(breaker(ramp_steps=[0.5, 0.5, 1.0])).path == f"{CLIENT}.breaker.ramp_steps"


def test_retry_max_backoff_below_initial_backoff_is_refused() -> None:
    data = client({"idempotent": True, "retry": {"initial_backoff": 2.0, "max_backoff": 1.0}})
    assert refused(data).path.startswith(f"{CLIENT}.retry.")


@pytest.mark.parametrize("adaptive", [{"initial_limit": 5000}, {"min_limit": 50, "initial_limit": 20}])
def test_adaptive_initial_limit_outside_the_bounds_is_refused(adaptive: dict[str, Any]) -> None:
    assert refused({"adaptive": adaptive}).path.startswith("rules.adaptive.")
