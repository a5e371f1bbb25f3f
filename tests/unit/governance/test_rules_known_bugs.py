"""Known bugs, pinned: rules the model once accepted that the mechanisms refuse at build time (or
ignore): key sources without a name, partial method wildcards, non-finite numbers, repeated ramp
steps, a max backoff below the initial one, an initial adaptive limit outside its bounds. The
model must refuse them first, so a bad rule never reaches a live call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rules_examples import CLIENT, SERVER, breaker, client, rate_limit, refused, server

from telemetry.governance.rules import GovernanceRules, RuleError

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
