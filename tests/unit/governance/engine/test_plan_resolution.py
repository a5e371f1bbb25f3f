"""Plan resolution: the most specific method pattern wins (and replaces rather than merges), plans
are cached per snapshot, the fields of server and client plans, and the scope of each mechanism (a
limiter per pattern, breakers per target and method, throttles per target, bulkheads per target
and pattern).
"""

from __future__ import annotations

import grpc

from engine.support import (
    admitted,
    breaker_of,
    client_info,
    client_rules,
    cplan,
    limit_rule,
    limiter_of,
    server_info,
    server_rules,
    splan,
)
from telemetry.governance.breaker import BreakerState, CircuitBreaker
from telemetry.governance.degrade import Priority
from telemetry.governance.engine import Governance
from telemetry.governance.gates import KeyedGate
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.ratelimit import ConcurrencyLimiter, TokenBucketLimiter
from telemetry.governance.retry import RetryBudget, RetryPolicy
from telemetry.governance.throttle import AdaptiveThrottle

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
        bulkhead: ConcurrencyLimiter | None = cplan(gov, method).instance("bulkhead")
        assert bulkhead is not None
        return bulkhead.max_concurrent

    assert (size("/pkg.Svc/M"), size("/pkg.Svc/Other"), size("/other.Svc/M")) == (3, 2, 1)


def test_the_most_specific_rule_replaces_rather_than_merges(gov: Governance) -> None:
    gov.apply(server_rules({"*": limit_rule(1), "pkg.Svc/M": {"priority": "high"}}))
    assert splan(gov, "/pkg.Svc/M").instance("rate_limit") is None  # '*' does not add its limiter
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
    assert old_plan.instance("rate_limit") is old_limiter
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
    assert isinstance(plan.instance("rate_limit"), KeyedLimiter)
    [gate] = plan.gates
    assert isinstance(gate.mechanism, KeyedGate) and gate.mechanism.source == "metadata:user"
    assert (plan.priority, plan.write, plan.fallback) == (Priority.LOW, True, None)
    plain = splan(gov, "/pkg.Svc/N")
    assert isinstance(plain.instance("rate_limit"), TokenBucketLimiter)  # the default algorithm
    assert not isinstance(plain.gates[0].mechanism, KeyedGate)
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
    assert isinstance(plan.instance("breaker"), CircuitBreaker)
    assert plan.failure_codes == frozenset({grpc.StatusCode.ABORTED})
    assert isinstance(plan.instance("throttle"), AdaptiveThrottle)
    assert isinstance(plan.instance("bulkhead"), ConcurrencyLimiter)
    assert plan.retry_plan is not None
    assert isinstance(plan.retry_plan.policy, RetryPolicy)
    assert isinstance(plan.retry_plan.budget, RetryBudget)
    assert plan.retry_plan.codes == frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
    assert plan.fallback is not None
    assert plan.deferral is None  # no channel factory given: nothing to send deferred calls with
    other = cplan(gov, "/pkg.Svc/N")
    assert other.retry_plan is None
    assert other.instance("breaker") is None
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
    assert m.instance("throttle") is n.instance("throttle") is x.instance("throttle")  # one per target
    assert cplan(gov, "/pkg.Svc/M", "other:1").instance("throttle") is not m.instance("throttle")
    assert n.instance("bulkhead") is x.instance("bulkhead")  # same target, same pattern '*'
    assert m.instance("bulkhead") is not n.instance("bulkhead")  # its own pattern
    assert cplan(gov, "/pkg.Svc/N", "other:1").instance("bulkhead") is not n.instance("bulkhead")


def test_a_shared_bulkhead_is_one_count_across_patterns(gov: Governance) -> None:
    """``shared`` names the pattern whose count a rule's methods join (the panel's service cap):
    one instance for ``*`` and the rules that share it, on the server and per target on a client;
    a bulkhead without ``shared`` stays its own."""
    cap = {"max_concurrent": 3, "shared": "*"}
    methods = {"*": {"bulkhead": cap}, "pkg.Svc/M": {**limit_rule(5), "bulkhead": cap},
               "pkg.Svc/O": {"bulkhead": {"max_concurrent": 3}}}  # fmt: skip
    gov.apply(server_rules(methods))
    star, m, own = (splan(gov, f"/pkg.Svc/{name}").instance("bulkhead") for name in "NMO")
    assert isinstance(star, ConcurrencyLimiter) and star is m
    assert own is not star
    gov.apply(client_rules({"*": {"bulkhead": cap}, "pkg.Svc/M": {"idempotent": True, "bulkhead": cap}}))
    assert cplan(gov, "/pkg.Svc/M").instance("bulkhead") is cplan(gov, "/pkg.Svc/N").instance("bulkhead")
    assert cplan(gov, "/pkg.Svc/M", "other:1").instance("bulkhead") is not cplan(
        gov, "/pkg.Svc/M"
    ).instance("bulkhead")  # still per target
