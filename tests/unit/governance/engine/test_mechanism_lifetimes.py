"""Mechanism lifetimes across apply(): an unchanged rule keeps its limiter, breaker, adaptive
limiter, shedder or last-good cache with its state; a changed rule gets a fresh one; a removed (or
taken-over) rule is pruned; forced breakers; disabled rules are kept as given.
"""

from __future__ import annotations

import json
import threading

from engine.support import (
    RULES,
    admitted,
    breaker_of,
    client_rules,
    fallback_of,
    limit_rule,
    limiter_of,
    server_info,
    server_rules,
)
from telemetry.governance.adaptive import AdaptiveLimiter
from telemetry.governance.breaker import BreakerState
from telemetry.governance.degrade import PriorityShedder
from telemetry.governance.engine import Governance
from telemetry.governance.ratelimit import FixedWindowLimiter
from telemetry.governance.rules import GovernanceRules
from telemetry.testing import FakeClock

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
