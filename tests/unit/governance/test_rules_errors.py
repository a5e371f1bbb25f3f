"""Invalid governance rules: every error names the exact field (``RuleError.path``) and says what is
wrong, one bad field refuses the whole rule set, and JSON text that is not JSON or not an object.
Every test checks the path exactly, so a message that names the wrong field fails.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rules_examples import CLIENT, FULL, SERVER, breaker, client, rate_limit, refused, server

from telemetry.config import ConfigError
from telemetry.governance.rules import GovernanceRules, RuleError

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
