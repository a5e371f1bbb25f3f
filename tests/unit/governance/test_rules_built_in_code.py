"""Governance rules built in code (the dataclasses, not parsed) are validated again by parse_rules()
and by Governance.apply(), with the same field paths as parsed rules.
"""

from __future__ import annotations

import pytest
from rules_examples import CLIENT, SERVER

from telemetry.governance.engine import Governance
from telemetry.governance.loading import parse_rules
from telemetry.governance.rules import (
    AdaptiveRule,
    BreakerRule,
    ClientMethodRules,
    ClientRules,
    GovernanceRules,
    RateLimitRule,
    RuleError,
    ServerMethodRules,
    ServerRules,
)
from telemetry.testing import FakeClock

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
