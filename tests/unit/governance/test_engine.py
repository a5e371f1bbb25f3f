"""The governance engine: apply() from every input form, plan resolution, mechanism lifetimes,
fallback plans and the metrics collector. Deterministic: a FakeClock, a fixed CPU reading (so no
sampler thread starts) and no channel factory (so no deferral sender starts)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from prometheus_client.metrics_core import Metric

from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.degrade import Priority, PriorityShedder
from telemetry.governance.engine import (
    ClientPlan,
    FallbackPlan,
    Governance,
    ServerPlan,
    parse_rules,
    request_key,
)
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import ConcurrencyLimiter, FixedWindowLimiter, TokenBucketLimiter
from telemetry.governance.retry import RetryBudget, RetryPolicy
from telemetry.governance.rules import AdaptiveRule, GovernanceRules, RuleError
from telemetry.governance.throttle import AdaptiveThrottle
from telemetry.rpc.call import MethodInfo, RpcKind, Side
from telemetry.testing import FakeClock

RULES: dict[str, Any] = {
    "server": {"methods": {"pkg.Svc/M": {"rate_limit": {"algorithm": "fixed_window", "limit": 2}}}},
    "client": {"methods": {"*": {"breaker": {"failure_rate_threshold": 0.25}}}},
}
RULES_YAML = """\
server:
  methods:
    pkg.Svc/M:
      rate_limit:
        algorithm: fixed_window
        limit: 2
client:
  methods:
    "*":
      breaker:
        failure_rate_threshold: 0.25
"""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def gov(clock: FakeClock) -> Governance:
    return Governance(clock=clock, cpu=lambda: 0.1)


def server_info(method: str = "/pkg.Svc/M") -> MethodInfo:
    return MethodInfo(method, RpcKind.UNARY, Side.SERVER)


def client_info(method: str = "/pkg.Svc/M") -> MethodInfo:
    return MethodInfo(method, RpcKind.UNARY, Side.CLIENT)


def limit_rule(limit: float, algorithm: str = "fixed_window") -> dict[str, Any]:
    return {"rate_limit": {"algorithm": algorithm, "limit": limit}}


def server_rules(methods: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"server": {"methods": methods}, **extra}


def client_rules(methods: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"client": {"methods": methods}, **extra}


def splan(gov: Governance, method: str = "/pkg.Svc/M") -> ServerPlan:
    plan = gov.server_plan(gov.snapshot(), server_info(method))
    assert plan is not None
    return plan


def cplan(gov: Governance, method: str = "/pkg.Svc/M", target: str = "t:1") -> ClientPlan:
    plan = gov.client_plan(gov.snapshot(), client_info(method), target)
    assert plan is not None
    return plan


def limiter_of(gov: Governance, method: str = "/pkg.Svc/M") -> Any:
    limiter = splan(gov, method).limiter
    assert limiter is not None
    return limiter


def breaker_of(gov: Governance, method: str = "/pkg.Svc/M", target: str = "t:1") -> CircuitBreaker:
    breaker = cplan(gov, method, target).breaker
    assert breaker is not None
    return breaker


def admitted(limiter: Any, attempts: int) -> int:
    return sum(bool(limiter.try_acquire()) for _ in range(attempts))


def fallback_of(gov: Governance, method: str = "/pkg.Svc/M") -> FallbackPlan:
    fallback = splan(gov, method).fallback
    assert fallback is not None
    return fallback


def collect(gov: Governance) -> dict[str, Metric]:
    return {family.name: family for family in gov.collector().collect()}


def samples(family: Metric) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


class Request:
    """A minimal protobuf-like request: keyed by its serialized bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.deterministic: list[bool] = []

    def SerializeToString(self, *, deterministic: bool = False) -> bytes:  # noqa: N802 - protobuf API
        self.deterministic.append(deterministic)
        return self.payload


# -- apply: input forms ---------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


INPUTS: dict[str, Callable[[Path], Any]] = {
    "dict": lambda tmp: RULES,
    "rules object": lambda tmp: GovernanceRules.from_dict(RULES),
    "json text": lambda tmp: json.dumps(RULES),
    "json file": lambda tmp: write(tmp / "rules.json", json.dumps(RULES)),
    "file without suffix is json": lambda tmp: write(tmp / "rules", json.dumps(RULES)),
}


@pytest.mark.parametrize("make", list(INPUTS.values()), ids=list(INPUTS))
def test_apply_from_every_input_form(
    gov: Governance, tmp_path: Path, make: Callable[[Path], Any]
) -> None:
    expected = GovernanceRules.from_dict(RULES)
    applied = gov.apply(make(tmp_path))
    assert applied == expected
    assert gov.rules is applied
    assert gov.generation == 1
    assert isinstance(limiter_of(gov), FixedWindowLimiter)


@pytest.mark.parametrize("name", ["rules.yaml", "rules.yml"])
def test_apply_from_a_yaml_file(gov: Governance, tmp_path: Path, name: str) -> None:
    applied = gov.apply(write(tmp_path / name, RULES_YAML))
    assert applied == GovernanceRules.from_dict(RULES)
    assert gov.generation == 1


def test_apply_from_an_empty_yaml_file_gives_the_defaults(gov: Governance, tmp_path: Path) -> None:
    assert gov.apply(write(tmp_path / "rules.yaml", "")) == GovernanceRules()


def test_invalid_yaml_is_a_rule_error(gov: Governance, tmp_path: Path) -> None:
    path = write(tmp_path / "rules.yaml", "server: [unclosed\n")
    with pytest.raises(RuleError) as caught:
        gov.apply(path)
    assert caught.value.path == str(path)
    assert "not valid YAML" in str(caught.value)


def test_yaml_rules_are_validated_like_json(gov: Governance, tmp_path: Path) -> None:
    with pytest.raises(RuleError) as caught:
        gov.apply(write(tmp_path / "rules.yaml", "adaptive:\n  min_limit: 0\n"))
    assert caught.value.path == "rules.adaptive.min_limit"


def test_constructor_applies_rules(clock: FakeClock) -> None:
    assert Governance(clock=clock, cpu=lambda: 0.1).generation == 0
    gov = Governance(RULES, clock=clock, cpu=lambda: 0.1)
    assert gov.generation == 1
    assert gov.rules == GovernanceRules.from_dict(RULES)


def test_constructor_refuses_invalid_rules(clock: FakeClock) -> None:
    with pytest.raises(RuleError):
        Governance({"bogus": 1}, clock=clock, cpu=lambda: 0.1)


def test_defaults_before_any_apply(gov: Governance) -> None:
    assert gov.rules == GovernanceRules()
    assert gov.generation == 0
    assert gov.server_plan(gov.snapshot(), server_info()) is None
    assert gov.client_plan(gov.snapshot(), client_info(), "t:1") is None
    assert gov.snapshot().adaptive is None
    assert gov.snapshot().shedder is None
    assert list(gov.breakers()) == []


def test_every_apply_is_a_new_generation(gov: Governance) -> None:
    for generation in (1, 2, 3):
        gov.apply(RULES)  # the same rules again still count
        assert gov.generation == generation
        assert gov.snapshot().generation == generation


def test_parse_rules_returns_an_equal_validated_copy() -> None:
    rules = GovernanceRules.from_dict(RULES)
    assert parse_rules(rules) == rules
    assert parse_rules(json.dumps(RULES)) == rules
    assert parse_rules(RULES) == rules


# -- apply: invalid rules change nothing ---------------------------------------------------------

INVALID: dict[str, Callable[[Path], Any]] = {
    "dict": lambda tmp: server_rules({"*": limit_rule(0)}),
    "json text": lambda tmp: "{not json",
    "json text, bad field": lambda tmp: json.dumps({"adaptive": {"cpu_threshold": -1}}),
    "rules object": lambda tmp: GovernanceRules(enabled="no"),  # type: ignore[arg-type]
    "json file": lambda tmp: write(tmp / "bad.json", '{"shedding": {"levels": [3, 2, 1]}}'),
    "missing file": lambda tmp: tmp / "missing.json",
    "not an object": lambda tmp: [],
}


@pytest.mark.parametrize("make", list(INVALID.values()), ids=list(INVALID))
def test_invalid_apply_changes_nothing(
    gov: Governance, tmp_path: Path, make: Callable[[Path], Any]
) -> None:
    gov.apply(RULES)
    limiter = limiter_of(gov)
    rules, snapshot = gov.rules, gov.snapshot()
    seen: list[GovernanceRules] = []
    gov.on_apply(seen.append)
    with pytest.raises(RuleError):
        gov.apply(make(tmp_path))
    assert gov.rules is rules
    assert gov.generation == 1
    assert gov.snapshot() is snapshot
    assert limiter_of(gov) is limiter
    assert seen == []


def test_missing_file_names_the_path(gov: Governance, tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(RuleError) as caught:
        gov.apply(path)
    assert caught.value.path == str(path)
    assert "cannot read rules file" in str(caught.value)


def test_a_path_given_as_str_is_json_text(gov: Governance, tmp_path: Path) -> None:
    path = write(tmp_path / "rules.json", json.dumps(RULES))
    with pytest.raises(RuleError) as caught:
        gov.apply(str(path))
    assert caught.value.path == "rules"


# -- plan resolution ------------------------------------------------------------------------------


def test_most_specific_server_pattern_wins(gov: Governance) -> None:
    gov.apply(
        server_rules(
            {
                "*": {**limit_rule(1), "priority": "low"},
                "pkg.Svc/*": {**limit_rule(2), "priority": "high"},
                "pkg.Svc/M": {**limit_rule(3), "priority": "critical", "write": True},
            }
        )
    )
    assert limiter_of(gov, "/pkg.Svc/M").limit == 3
    assert limiter_of(gov, "/pkg.Svc/Other").limit == 2
    assert limiter_of(gov, "/other.Svc/M").limit == 1
    assert (splan(gov, "/pkg.Svc/M").priority, splan(gov, "/pkg.Svc/M").write) == (
        Priority.CRITICAL,
        True,
    )
    assert splan(gov, "/pkg.Svc/Other").priority is Priority.HIGH
    assert splan(gov, "/other.Svc/M").priority is Priority.LOW
    assert splan(gov, "/other.Svc/M").write is False


def test_most_specific_client_pattern_wins(gov: Governance) -> None:
    gov.apply(
        client_rules(
            {
                "*": {"bulkhead": {"max_concurrent": 1}},
                "pkg.Svc/*": {"bulkhead": {"max_concurrent": 2}},
                "pkg.Svc/M": {"bulkhead": {"max_concurrent": 3}},
            }
        )
    )

    def size(method: str) -> int:
        bulkhead = cplan(gov, method).bulkhead
        assert bulkhead is not None
        return bulkhead.max_concurrent

    assert (size("/pkg.Svc/M"), size("/pkg.Svc/Other"), size("/other.Svc/M")) == (3, 2, 1)


def test_the_most_specific_rule_replaces_rather_than_merges(gov: Governance) -> None:
    gov.apply(server_rules({"*": limit_rule(1), "pkg.Svc/M": {"priority": "high"}}))
    assert splan(gov, "/pkg.Svc/M").limiter is None  # '*' does not add its limiter
    assert splan(gov, "/pkg.Svc/M").priority is Priority.HIGH


def test_no_matching_pattern_gives_no_plan(gov: Governance) -> None:
    gov.apply(
        {
            **server_rules({"pkg.Svc/*": limit_rule(1)}),
            **client_rules({"pkg.Svc/M": {"bulkhead": {"max_concurrent": 1}}}),
        }
    )
    assert gov.server_plan(gov.snapshot(), server_info("/other.Svc/M")) is None
    assert gov.client_plan(gov.snapshot(), client_info("/pkg.Svc/Other"), "t:1") is None
    assert gov.server_plan(gov.snapshot(), server_info("/pkg.Svc/Other")) is not None


def test_plans_are_cached_per_snapshot(gov: Governance) -> None:
    gov.apply({**server_rules({"*": limit_rule(1)}), **client_rules({"*": {"breaker": {}}})})
    snapshot = gov.snapshot()
    assert gov.server_plan(snapshot, server_info()) is gov.server_plan(snapshot, server_info())
    assert gov.client_plan(snapshot, client_info(), "a") is gov.client_plan(snapshot, client_info(), "a")
    assert gov.client_plan(snapshot, client_info(), "a") is not gov.client_plan(
        snapshot, client_info(), "b"
    )
    gov.apply(gov.rules)
    assert gov.server_plan(gov.snapshot(), server_info()) is not gov.server_plan(snapshot, server_info())


def test_an_old_snapshot_keeps_its_mechanisms(gov: Governance) -> None:
    """Calls that started on a snapshot finish on its mechanisms, whatever apply() does meanwhile."""
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(2)}))
    old = gov.snapshot()
    old_limiter = limiter_of(gov)
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(5)}))
    old_plan = gov.server_plan(old, server_info())
    assert old_plan is not None
    assert old_plan.limiter is old_limiter
    assert limiter_of(gov) is not old_limiter


def test_server_plan_fields(gov: Governance) -> None:
    gov.apply(
        server_rules(
            {
                "pkg.Svc/M": {
                    "rate_limit": {"limit": 5, "key": "metadata:user", "allow": ["vip"]},
                    "priority": "low",
                    "write": True,
                },
                "pkg.Svc/N": {"rate_limit": {"limit": 5}},
            }
        )
    )
    plan = splan(gov)
    assert isinstance(plan.limiter, KeyedLimiter)
    assert plan.limit_key == "metadata:user"
    assert (plan.priority, plan.write, plan.fallback) == (Priority.LOW, True, None)
    plain = splan(gov, "/pkg.Svc/N")
    assert isinstance(plain.limiter, TokenBucketLimiter)  # the default algorithm
    assert plain.limit_key == ""
    assert plain.priority is Priority.NORMAL


def test_client_plan_fields(gov: Governance) -> None:
    gov.apply(
        client_rules(
            {
                "pkg.Svc/M": {
                    "breaker": {"failure_codes": ["ABORTED"]},
                    "throttle": {},
                    "bulkhead": {"max_concurrent": 4},
                    "retry": {"codes": ["UNAVAILABLE", "ABORTED"]},
                    "idempotent": True,
                    "defer": True,
                    "fallback": {"mode": "default"},
                },
                "pkg.Svc/N": {"retry": {}},  # not idempotent: no retries
            }
        )
    )
    plan = cplan(gov)
    assert isinstance(plan.breaker, CircuitBreaker)
    assert plan.failure_codes == frozenset({grpc.StatusCode.ABORTED})
    assert isinstance(plan.throttle, AdaptiveThrottle)
    assert isinstance(plan.bulkhead, ConcurrencyLimiter)
    assert plan.retry_plan is not None
    assert isinstance(plan.retry_plan.policy, RetryPolicy)
    assert isinstance(plan.retry_plan.budget, RetryBudget)
    assert plan.retry_plan.codes == frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
    assert plan.fallback is not None
    assert plan.deferral is None  # no channel factory given: nothing to send deferred calls with
    other = cplan(gov, "/pkg.Svc/N")
    assert other.retry_plan is None
    assert other.breaker is None
    assert grpc.StatusCode.UNAVAILABLE in other.failure_codes  # the defaults without a breaker


# -- mechanism scope ------------------------------------------------------------------------------


def test_a_limiter_under_star_is_one_for_the_whole_service(gov: Governance) -> None:
    gov.apply(server_rules({"*": limit_rule(3)}))
    methods = ["/pkg.Svc/M", "/pkg.Svc/N", "/other.Svc/X"]
    limiters = [limiter_of(gov, m) for m in methods]
    assert all(limiter is limiters[0] for limiter in limiters)
    assert [admitted(limiter_of(gov, m), 1) for m in methods] == [1, 1, 1]
    assert admitted(limiter_of(gov, "/yet.Another/Y"), 1) == 0  # the service-wide budget is spent


def test_a_limiter_under_a_method_is_its_own(gov: Governance) -> None:
    gov.apply(server_rules({"*": limit_rule(1), "pkg.Svc/M": limit_rule(1)}))
    own, shared = limiter_of(gov, "/pkg.Svc/M"), limiter_of(gov, "/pkg.Svc/N")
    assert own is not shared
    assert limiter_of(gov, "/other.Svc/X") is shared
    assert admitted(own, 5) == 1
    assert admitted(shared, 5) == 1


def test_a_limiter_under_service_star_is_shared_by_its_methods(gov: Governance) -> None:
    gov.apply(server_rules({"pkg.Svc/*": limit_rule(1), "other.Svc/*": limit_rule(1)}))
    assert limiter_of(gov, "/pkg.Svc/M") is limiter_of(gov, "/pkg.Svc/N")
    assert limiter_of(gov, "/pkg.Svc/M") is not limiter_of(gov, "/other.Svc/M")


def test_equal_rules_under_different_patterns_are_different_limiters(gov: Governance) -> None:
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(1), "pkg.Svc/N": limit_rule(1)}))
    assert limiter_of(gov, "/pkg.Svc/M") is not limiter_of(gov, "/pkg.Svc/N")


def test_breakers_are_per_target_and_method(gov: Governance) -> None:
    gov.apply(client_rules({"*": {"breaker": {}}}))
    seen = {
        (target, method): breaker_of(gov, method, target)
        for target in ("a:1", "b:1")
        for method in ("/pkg.Svc/M", "/pkg.Svc/N")
    }
    assert len({id(b) for b in seen.values()}) == 4
    assert breaker_of(gov, "/pkg.Svc/M", "a:1") is seen["a:1", "/pkg.Svc/M"]
    listed = {(target, method): breaker for target, method, breaker in gov.breakers()}
    assert listed == seen
    assert all(b.state is BreakerState.CLOSED for b in listed.values())


def test_throttle_is_per_target_and_bulkhead_per_target_and_pattern(gov: Governance) -> None:
    gov.apply(
        client_rules(
            {
                "*": {"throttle": {}, "bulkhead": {"max_concurrent": 2}},
                "pkg.Svc/M": {"throttle": {}, "bulkhead": {"max_concurrent": 2}},
            }
        )
    )
    m, n, x = cplan(gov, "/pkg.Svc/M"), cplan(gov, "/pkg.Svc/N"), cplan(gov, "/other.Svc/X")
    assert m.throttle is n.throttle is x.throttle  # one per target
    assert cplan(gov, "/pkg.Svc/M", "other:1").throttle is not m.throttle
    assert n.bulkhead is x.bulkhead  # same target, same pattern '*'
    assert m.bulkhead is not n.bulkhead  # its own pattern
    assert cplan(gov, "/pkg.Svc/N", "other:1").bulkhead is not n.bulkhead


# -- mechanism lifetimes across apply() -----------------------------------------------------------


def test_an_unchanged_rule_keeps_its_limiter_and_its_state(gov: Governance) -> None:
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(2)}))
    limiter = limiter_of(gov)
    assert isinstance(limiter, FixedWindowLimiter)
    assert admitted(limiter, 3) == 2
    # change OTHER rules: a new method rule, client rules, adaptive and shedding
    gov.apply(
        {
            **server_rules({"pkg.Svc/M": limit_rule(2), "pkg.Svc/N": limit_rule(9)}),
            **client_rules({"*": {"breaker": {}}}),
            "shedding": {"enabled": True},
        }
    )
    assert gov.generation == 2
    assert limiter_of(gov) is limiter
    assert admitted(limiter_of(gov), 1) == 0  # still used up
    gov.apply(
        json.dumps(
            server_rules({"pkg.Svc/M": {"rate_limit": {"limit": 2.0, "algorithm": "fixed_window"}}})
        )
    )
    assert limiter_of(gov) is limiter  # an equal rule, however written, is unchanged


def test_a_changed_rule_gets_a_fresh_limiter(gov: Governance) -> None:
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(2)}))
    old = limiter_of(gov)
    assert admitted(old, 3) == 2
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(3)}))
    new = limiter_of(gov)
    assert new is not old
    assert admitted(new, 5) == 3
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(3, "sliding_window")}))
    assert limiter_of(gov) is not new


def test_a_removed_rule_is_pruned(gov: Governance) -> None:
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(2)}))
    old = limiter_of(gov)
    assert admitted(old, 2) == 2
    gov.apply(server_rules({"pkg.Svc/N": limit_rule(5)}))
    assert gov.server_plan(gov.snapshot(), server_info()) is None
    gov.apply(server_rules({"pkg.Svc/M": limit_rule(2)}))  # the same rule again: built afresh
    fresh = limiter_of(gov)
    assert fresh is not old
    assert admitted(fresh, 3) == 2


def test_a_removed_rule_is_pruned_even_if_an_equal_rule_remains_elsewhere(gov: Governance) -> None:
    both = server_rules({"*": limit_rule(2), "pkg.Svc/M": limit_rule(2)})
    gov.apply(both)
    old = limiter_of(gov)
    assert admitted(old, 2) == 2
    gov.apply(server_rules({"*": limit_rule(2)}))  # the 'pkg.Svc/M' rule is gone
    assert limiter_of(gov) is not old  # '*' applies now
    gov.apply(both)
    assert limiter_of(gov) is not old


def test_an_unchanged_breaker_keeps_its_state(gov: Governance, clock: FakeClock) -> None:
    rules = client_rules({"pkg.Svc/M": {"breaker": {"consecutive_failures": 2}}})
    gov.apply(rules)
    breaker = breaker_of(gov)
    for _ in range(2):
        assert breaker.try_acquire()
        breaker.on_failure(0.01)
    assert breaker.state is BreakerState.OPEN
    gov.apply({**rules, **server_rules({"*": limit_rule(1)})})
    assert breaker_of(gov) is breaker
    assert breaker_of(gov).state is BreakerState.OPEN
    assert not breaker_of(gov).try_acquire()
    changed = client_rules({"pkg.Svc/M": {"breaker": {"consecutive_failures": 3}}})
    gov.apply(changed)
    assert breaker_of(gov) is not breaker
    assert breaker_of(gov).state is BreakerState.CLOSED


def test_a_removed_breaker_is_pruned_from_breakers(gov: Governance) -> None:
    gov.apply(client_rules({"pkg.Svc/M": {"breaker": {}}}))
    breaker_of(gov)
    assert [(t, m) for t, m, _ in gov.breakers()] == [("t:1", "/pkg.Svc/M")]
    gov.apply(client_rules({"pkg.Svc/M": {"bulkhead": {"max_concurrent": 1}}}))
    assert list(gov.breakers()) == []


def test_a_breaker_a_narrower_pattern_took_over_is_pruned(gov: Governance) -> None:
    """The panel flips one downstream's breaker by adding its pattern beside '*': the method's
    old breaker (whose rule lives on under '*') must go, or its metrics show two states."""
    wide = {"breaker": {"minimum_calls": 5}}
    gov.apply(client_rules({"*": wide}))
    breaker_of(gov, "/pkg.Svc/M")
    breaker_of(gov, "/pkg.Other/N")
    gov.apply(client_rules({"*": wide, "pkg.Svc/*": {"breaker": {"minimum_calls": 5, "force": "open"}}}))
    forced = breaker_of(gov, "/pkg.Svc/M")
    states = {(t, m): b.state for t, m, b in gov.breakers()}
    assert states == {("t:1", "/pkg.Svc/M"): forced.state, ("t:1", "/pkg.Other/N"): BreakerState.CLOSED}
    assert forced.state is BreakerState.FORCED_OPEN


def test_forced_breakers(gov: Governance) -> None:
    gov.apply(
        client_rules(
            {"pkg.Svc/M": {"breaker": {"force": "open"}}, "pkg.Svc/N": {"breaker": {"force": "closed"}}}
        )
    )
    opened = breaker_of(gov, "/pkg.Svc/M")
    assert opened.state is BreakerState.FORCED_OPEN
    assert not opened.try_acquire()
    closed = breaker_of(gov, "/pkg.Svc/N")
    assert closed.state is BreakerState.FORCED_CLOSED
    assert closed.try_acquire()
    transitions = gov.recorder.transitions()
    assert transitions[("t:1", "/pkg.Svc/M", "forced_open")] == 1
    assert transitions[("t:1", "/pkg.Svc/N", "forced_closed")] == 1
    # lifting the force is a rule change: a fresh, automatic breaker
    gov.apply(client_rules({"pkg.Svc/M": {"breaker": {}}}))
    assert breaker_of(gov, "/pkg.Svc/M").state is BreakerState.CLOSED


def test_adaptive_and_shedding_are_kept_while_unchanged(gov: Governance) -> None:
    threads = threading.active_count()
    gov.apply({"adaptive": {"enabled": True}, "shedding": {"enabled": True}})
    adaptive, shedder = gov.snapshot().adaptive, gov.snapshot().shedder
    assert isinstance(adaptive, AdaptiveLimiter)
    assert isinstance(shedder, PriorityShedder)
    gov.apply({"adaptive": {"enabled": True}, "shedding": {"enabled": True}, **server_rules({})})
    assert gov.snapshot().adaptive is adaptive
    assert gov.snapshot().shedder is shedder
    gov.apply({"adaptive": {"enabled": True, "initial_limit": 10}, "shedding": {"enabled": True}})
    assert gov.snapshot().adaptive is not adaptive
    assert gov.snapshot().shedder is shedder
    gov.apply({})
    assert gov.snapshot().adaptive is None
    assert gov.snapshot().shedder is None
    assert threading.active_count() == threads  # the injected cpu reading: no sampler thread
    assert gov.cpu() == 0.1


def test_a_last_good_cache_is_kept_while_unchanged(gov: Governance) -> None:
    rules = server_rules({"pkg.Svc/M": {"fallback": {"mode": "last_good"}}})
    gov.apply(rules)
    fallback_of(gov).remember("req", "resp")
    gov.apply({**rules, **client_rules({"*": {"breaker": {}}})})
    assert fallback_of(gov).answer("req") == (True, "resp")
    gov.apply(server_rules({"pkg.Svc/M": {"fallback": {"mode": "last_good", "cache_ttl": 5}}}))
    assert fallback_of(gov).answer("req") == (False, None)  # changed rule: a fresh cache


def test_disabled_rules_are_kept(gov: Governance) -> None:
    applied = gov.apply({"enabled": False, **RULES})
    assert applied.enabled is False
    assert gov.rules.enabled is False
    assert gov.rules.to_dict()["server"] == GovernanceRules.from_dict(RULES).to_dict()["server"]
    assert gov.snapshot().rules.enabled is False  # what the concerns check before doing anything
    gov.apply(gov.rules.to_dict() | {"enabled": True})
    assert gov.rules == GovernanceRules.from_dict(RULES)


# -- on_apply ---------------------------------------------------------------------------------------


def test_on_apply_listeners_get_the_parsed_rules(gov: Governance) -> None:
    calls: list[tuple[str, GovernanceRules, int]] = []
    gov.on_apply(lambda rules: calls.append(("first", rules, gov.generation)))
    gov.on_apply(lambda rules: calls.append(("second", rules, gov.generation)))
    applied = gov.apply(json.dumps(RULES))
    assert [name for name, _, _ in calls] == ["first", "second"]
    assert all(rules is applied is gov.rules for _, rules, _ in calls)
    assert all(generation == 1 for _, _, generation in calls)  # called once the rules are in force
    assert isinstance(calls[0][1], GovernanceRules)


def test_a_listener_added_later_sees_only_later_applies(gov: Governance) -> None:
    gov.apply(RULES)
    seen: list[GovernanceRules] = []
    gov.on_apply(seen.append)
    assert seen == []
    gov.apply({})
    assert seen == [GovernanceRules()]


# -- fallbacks -------------------------------------------------------------------------------------


def fallback_rules(mode: str, **extra: Any) -> dict[str, Any]:
    return server_rules({"pkg.Svc/*": {"fallback": {"mode": mode, **extra}}})


def test_register_fallback_needs_a_value(gov: Governance) -> None:
    with pytest.raises(ValueError, match="default= or fast_path="):
        gov.register_fallback("pkg.Svc/M")


def test_default_fallback(gov: Governance) -> None:
    gov.register_fallback("/pkg.Svc/M", default="D")  # the leading slash is optional
    gov.apply(fallback_rules("default"))
    assert fallback_of(gov).answer("any request") == (True, "D")
    assert fallback_of(gov, "/pkg.Svc/N").answer("any request") == (False, None)  # none registered


def test_fast_path_fallback(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", fast_path=lambda request: ("fast", request))
    gov.apply(fallback_rules("fast_path"))
    assert fallback_of(gov).answer("r") == (True, ("fast", "r"))


def test_fast_path_mode_falls_back_to_the_default(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", default="D")
    gov.apply(fallback_rules("fast_path"))
    assert fallback_of(gov).answer("r") == (True, "D")


def test_default_mode_does_not_call_the_fast_path(gov: Governance) -> None:
    calls: list[Any] = []
    gov.register_fallback("pkg.Svc/M", fast_path=calls.append)
    gov.apply(fallback_rules("default"))
    assert fallback_of(gov).answer("r") == (False, None)
    assert calls == []


def test_register_fallback_takes_effect_for_plans_resolved_afterwards(gov: Governance) -> None:
    gov.apply(fallback_rules("default"))
    before = fallback_of(gov)
    assert before.answer("r") == (False, None)
    generation = gov.generation
    gov.register_fallback("pkg.Svc/M", default="D")
    assert gov.generation == generation  # counts rule sets applied; plans still re-resolve
    assert gov.rules == GovernanceRules.from_dict(fallback_rules("default"))
    assert fallback_of(gov).answer("r") == (True, "D")


def test_last_good_fallback(gov: Governance, clock: FakeClock) -> None:
    gov.apply(fallback_rules("last_good", cache_ttl=10))
    fallback = fallback_of(gov)
    assert fallback.answer("r") == (False, None)  # nothing remembered, nothing registered
    fallback.remember("r", "resp")
    assert fallback.answer("r") == (True, "resp")
    assert fallback.answer("other") == (False, None)
    fallback.remember("r2", None)  # None is never cached
    assert fallback.answer("r2") == (False, None)
    clock.advance(10)
    assert fallback.answer("r") == (False, None)  # expired


def test_last_good_is_keyed_by_the_serialized_request(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    first = Request(b"same")
    fallback.remember(first, "resp")
    twin = Request(b"same")
    assert fallback.answer(twin) == (True, "resp")
    assert first.deterministic == [True]
    assert twin.deterministic == [True]
    assert fallback.answer(Request(b"different")) == (False, None)


def test_last_good_with_protobuf_messages(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    request = struct_pb2.Value(string_value="q")
    fallback.remember(request, struct_pb2.Value(number_value=42))
    assert fallback.answer(struct_pb2.Value(string_value="q")) == (
        True,
        struct_pb2.Value(number_value=42),
    )
    assert fallback.answer(struct_pb2.Value(string_value="other")) == (False, None)


def test_last_good_miss_uses_the_registered_default(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", default="D")
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    assert fallback.answer("r") == (True, "D")
    fallback.remember("r", "resp")
    assert fallback.answer("r") == (True, "resp")


def test_last_good_caches_are_per_method(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback_of(gov, "/pkg.Svc/M").remember("r", "resp")
    assert fallback_of(gov, "/pkg.Svc/N").answer("r") == (False, None)


def test_client_last_good_caches_are_per_target(gov: Governance) -> None:
    gov.apply(client_rules({"*": {"fallback": {"mode": "last_good"}}}))
    a, b = cplan(gov, target="a:1").fallback, cplan(gov, target="b:1").fallback
    assert a is not None
    assert b is not None
    a.remember("r", "resp")
    assert a.answer("r") == (True, "resp")
    assert b.answer("r") == (False, None)


def test_fallback_triggers(gov: Governance) -> None:
    gov.apply(fallback_rules("default", on=["limit"]))
    fallback = fallback_of(gov)
    assert (fallback.on_limit, fallback.on_breaker, fallback.on_failure) == (True, False, False)
    gov.apply(fallback_rules("default"))
    fallback = fallback_of(gov)
    assert (fallback.on_limit, fallback.on_breaker, fallback.on_failure) == (True, True, True)


def test_request_key() -> None:
    assert request_key(Request(b"x")) == b"x"
    assert request_key(struct_pb2.Value(string_value="q")) == struct_pb2.Value(
        string_value="q"
    ).SerializeToString(deterministic=True)
    assert request_key({"a": 1}) == repr({"a": 1})


# -- collector ---------------------------------------------------------------------------------------


def test_collector_families(gov: Governance) -> None:
    gov.apply(RULES)
    families = collect(gov)
    assert set(families) == {
        "governance_decisions",
        "governance_breaker_transitions",
        "governance_rules_generation",
    }
    assert families["governance_decisions"].type == "counter"
    assert families["governance_breaker_transitions"].type == "counter"
    assert families["governance_rules_generation"].type == "gauge"
    assert samples(families["governance_rules_generation"]) == {(): 1.0}
    assert families["governance_decisions"].samples == []
    gov.apply(RULES)
    assert samples(collect(gov)["governance_rules_generation"]) == {(): 2.0}


def test_collector_counts_decisions(gov: Governance) -> None:
    gov.recorder.decision(None, "rate_limit", "rejected", "limit reached")
    gov.recorder.decision(None, "rate_limit", "rejected", "limit reached")
    decisions = collect(gov)["governance_decisions"]
    assert {
        (s.name, s.labels["mechanism"], s.labels["outcome"], s.value) for s in decisions.samples
    } >= {("governance_decisions_total", "rate_limit", "rejected", 2.0)}


def test_collector_breaker_gauges_and_transitions(gov: Governance) -> None:
    gov.apply(client_rules({"pkg.Svc/M": {"breaker": {"force": "open"}}, "pkg.Svc/N": {"breaker": {}}}))
    breaker_of(gov, "/pkg.Svc/M")
    breaker_of(gov, "/pkg.Svc/N")
    families = collect(gov)
    m = (("method", "/pkg.Svc/M"), ("target", "t:1"))
    n = (("method", "/pkg.Svc/N"), ("target", "t:1"))
    assert samples(families["governance_breaker_state"]) == {
        m: float(BreakerState.FORCED_OPEN),
        n: float(BreakerState.CLOSED),
    }
    assert samples(families["governance_breaker_admitted_share"]) == {m: 0.0, n: 1.0}
    transitions = [
        (s.name, s.labels, s.value) for s in families["governance_breaker_transitions"].samples
    ]
    assert transitions == [
        (
            "governance_breaker_transitions_total",
            {"target": "t:1", "method": "/pkg.Svc/M", "state": "forced_open"},
            1.0,
        )
    ]


def test_collector_adaptive_gauges(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True, "initial_limit": 20}})
    families = collect(gov)
    assert samples(families["governance_adaptive_limit"]) == {(): 20.0}
    assert samples(families["governance_adaptive_in_flight"]) == {(): 0.0}
    assert set(samples(families["governance_pressure"])) == {
        (("signal", "cpu"),),
        (("signal", "loop_lag"),),
    }
    shedding = samples(families["governance_shedding"])
    assert list(shedding.values()) == [0.0]
    gov.apply({})
    assert "governance_adaptive_limit" not in collect(gov)


def test_adaptive_cpu_threshold_above_one_core(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 1.5}})  # below the default cpu_max 2.0
    assert gov.rules.adaptive.cpu_threshold == 1.5
    assert gov.snapshot().adaptive is not None
    gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 4.0, "cpu_max": 8.0}})
    assert gov.snapshot().adaptive is not None
    with pytest.raises(RuleError) as caught:
        gov.apply({"adaptive": {"enabled": True, "cpu_threshold": 4.0}})
    assert caught.value.path == "rules.adaptive.cpu_max"
    assert gov.generation == 2


# -- the process switch interval follows adaptive.gil_switch_interval --------------------------


@pytest.fixture(autouse=True)
def _restore_switch_interval() -> Iterator[None]:
    saved = sys.getswitchinterval()
    yield
    sys.setswitchinterval(saved)


def test_adaptive_sets_the_switch_interval(gov: Governance) -> None:
    saved_interval = sys.getswitchinterval()
    gov.apply({"adaptive": {"enabled": True, "gil_switch_interval": 0.001}})
    assert sys.getswitchinterval() == pytest.approx(0.001)
    gov.apply({"adaptive": {"enabled": True}})
    assert sys.getswitchinterval() == pytest.approx(AdaptiveRule().gil_switch_interval)
    gov.apply({})
    assert sys.getswitchinterval() == pytest.approx(saved_interval)


def test_gil_switch_interval_zero_leaves_the_interval_alone(gov: Governance) -> None:
    sys.setswitchinterval(0.002)
    gov.apply({"adaptive": {"enabled": True, "gil_switch_interval": 0}})
    assert sys.getswitchinterval() == pytest.approx(0.002)


def test_rules_without_adaptive_do_not_touch_the_switch_interval(gov: Governance) -> None:
    sys.setswitchinterval(0.002)
    gov.apply(RULES)
    assert sys.getswitchinterval() == pytest.approx(0.002)


def _iter_names(families: Iterator[Metric]) -> list[str]:
    return [family.name for family in families]


def test_collector_is_repeatable(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True}})
    collector = gov.collector()
    assert _iter_names(collector.collect()) == _iter_names(collector.collect())
