"""The governance rules model's defaults and round trips: through dicts and JSON exactly, the
model types of parsed values, untouched input, and the values that are accepted (method patterns,
limit keys, every algorithm, boundary values, every status code).
"""

from __future__ import annotations

import json
import types

import pytest
from rules_examples import FULL, breaker, client, rate_limit, server

from telemetry.governance.rules import (
    DEFAULT_FAILURE_CODES,
    DEFAULT_RETRY_CODES,
    GRPC_CODE_NAMES,
    AdaptiveRule,
    BreakerRule,
    BrownoutRule,
    BulkheadRule,
    ClientMethodRules,
    ClientRules,
    FallbackRule,
    GovernanceRules,
    RateLimitRule,
    RetryRule,
    ServerMethodRules,
    ServerRules,
    SheddingRule,
    ThrottleRule,
)

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
        brownout=BrownoutRule(share=0.25),
        rate_limit=RateLimitRule(
            algorithm="leaky_bucket", limit=50.0, window=2.0, burst=5, max_wait=0.5, warm_up=20.0,
            cold_factor=4.0, key="metadata:user", allow=("vip", "ops"), max_keys=100, cluster=True,
            shared="*",
        ),
        bulkhead=BulkheadRule(max_concurrent=3, shared="*"),
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
