"""Governance.apply(): rules from every input form (dict, rules object, JSON text, JSON and YAML
files), the constructor's rules, generations, invalid rules that change nothing, and the on_apply
listeners, called once the rules are in force.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.support import RULES, client_info, limit_rule, limiter_of, server_info, server_rules
from telemetry.governance.engine import Governance
from telemetry.governance.loading import parse_rules
from telemetry.governance.ratelimit import FixedWindowLimiter
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.testing import FakeClock

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
