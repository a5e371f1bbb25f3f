"""Hostile rule input is refused with a RuleError naming the problem, never anything else.

Deep nesting is refused before any parser recurses into it, oversized text before it is parsed,
values echoed in messages are shortened, keys that are not strings (YAML, code) are refused, and
an exception the checks did not foresee still becomes a RuleError (chained to it) so a caller that
catches RuleError always answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from telemetry.governance import rules as model
from telemetry.governance.engine import Governance
from telemetry.governance.loading import parse_rules
from telemetry.governance.rules import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    GovernanceRules,
    RuleError,
    ServerMethodRules,
    ServerRules,
    json_text,
    load_json,
)
from telemetry.testing import FakeClock

DEEP = 100_000


def deep_list(depth: int) -> list[Any]:
    """A list nested ``depth`` deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def refused_json(text: str | bytes) -> RuleError:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_json(text)
    return caught.value


def refused(data: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        GovernanceRules.from_dict(data)
    return caught.value


# -- JSON text: bounded before it is parsed ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    # 10,000 objects: within the size bound (100,000 would be refused for its size first)
    ["[" * DEEP + "]" * DEEP, "{" * DEEP, '{"a":' * 10_000 + "1" + "}" * 10_000, ("[" * DEEP).encode()],
    ids=["lists", "unclosed objects", "objects", "bytes"],
)
def test_deep_nesting_is_refused_before_parsing(text: str | bytes) -> None:
    error = refused_json(text)
    assert str(error) == f"rules: nesting too deep (more than {MAX_JSON_DEPTH} levels)"


def test_the_depth_bound_is_exact() -> None:
    at_bound = '{"enabled": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    assert refused_json(at_bound).path == "rules.enabled"  # parsed: the type is wrong, not the depth
    past = '{"enabled": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    assert "nesting too deep" in str(refused_json(past))


@pytest.mark.parametrize(
    "text",
    [
        '{"bogus' + "[" * 100 + '": 1}',
        '{"bogus\\"' + "{" * 100 + '": 1}',  # an escaped quote does not end the string
        '{"bogus\\\\": "' + "[" * 100 + '"}',  # an escaped backslash does not escape the quote
    ],
    ids=["in a key", "after an escaped quote", "after an escaped backslash"],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    assert "unknown field" in str(refused_json(text))


def test_an_unterminated_string_hides_its_brackets() -> None:
    assert "not valid JSON" in str(refused_json('{"a": "' + "[" * 100))


@pytest.mark.parametrize(
    "text", [" " * (MAX_JSON_BYTES + 1), b" " * (MAX_JSON_BYTES + 1)], ids=["str", "bytes"]
)
def test_oversized_text_is_refused_unparsed(text: str | bytes) -> None:
    assert str(refused_json(text)).startswith(f"rules: too large: {MAX_JSON_BYTES + 1} ")


def test_text_at_the_size_bound_is_parsed() -> None:
    text = "{}" + " " * (MAX_JSON_BYTES - 2)
    assert GovernanceRules.from_json(text) == GovernanceRules()


@pytest.mark.parametrize("value", [None, 5, ["{}"], {"enabled": True}])
def test_from_json_of_something_that_is_not_text(value: Any) -> None:
    assert str(refused_json(value)).startswith("rules: must be JSON text, got ")


@pytest.mark.parametrize("text", [b"\xff\xfe{", b'{"enabled": true}\xff', "\ud800"])
def test_undecodable_text_is_not_valid_json(text: str | bytes) -> None:
    assert "not valid JSON" in str(refused_json(text))


def test_json_text_names_its_source() -> None:
    with pytest.raises(RuleError) as caught:
        json_text("[" * 40, "rules.server", source="/governance/svc/server")
    assert str(caught.value) == (
        "rules.server: nesting too deep in /governance/svc/server (more than 32 levels)"
    )
    with pytest.raises(RuleError) as caught:
        load_json("{", "rules.server", source="/governance/svc/server")
    assert str(caught.value).startswith("rules.server: not valid JSON in /governance/svc/server: ")
    assert load_json(b'{"a": [1, "]"]}', "x") == {"a": [1, "]"]}


def test_utf16_text_is_read_as_json_loads_would() -> None:
    text = json.dumps({"enabled": False}).encode("utf-16")
    assert GovernanceRules.from_json(text) == GovernanceRules(enabled=False)


# -- values: messages stay small ------------------------------------------------------------------


def test_a_deep_value_from_code_is_refused_with_a_short_message() -> None:
    for data in (
        {"enabled": deep_list(DEEP)},
        {"server": {"methods": {"*": {"priority": deep_list(DEEP)}}}},
    ):
        error = refused(data)
        assert error.__cause__ is None
        assert len(str(error)) < 200


def test_huge_strings_are_shortened_in_messages() -> None:
    huge = "x" * 200_000
    cases = [
        ({huge: 1}, "unknown field"),
        ({"server": {"methods": {huge: {}}}}, "method pattern"),
        ({"server": {"methods": {"*": {"priority": huge}}}}, "must be one of"),
        ({"server": {"methods": {"*": {"rate_limit": {"limit": 1, "key": huge}}}}}, "'peer'"),
        ({"client": {"methods": {"*": {"retry": {"codes": [huge]}}}}}, "unknown gRPC status code"),
        ({"enabled": huge}, "true or false"),
    ]
    for data, fragment in cases:
        error = refused(data)
        assert fragment in str(error)
        assert len(str(error)) < 400, str(error)[:500]


def test_keys_that_are_not_strings_are_refused() -> None:
    assert str(refused({1: True})) == "rules: field names must be strings, got 1"
    assert str(refused({"server": {"methods": {None: {}}}})) == (
        "rules.server.methods[None]: method pattern must be a string, got None"
    )
    assert refused({"server": {(1, 2): {}}}).path == "rules.server"


def test_integers_past_pythons_digit_limit_do_not_crash_the_message() -> None:
    # Code can build one; its repr raises ValueError (more than 4300 digits).
    error = refused({"enabled": 10**5000})
    assert str(error) == "rules.enabled: must be true or false, got <int>"


def test_subclasses_of_the_json_types_round_trip_as_plain_values() -> None:
    class Text(str):
        pass

    class Whole(int):
        pass

    rules = GovernanceRules.from_dict(
        {"server": {"methods": {Text("*"): {"rate_limit": {"limit": Whole(5), "key": Text("peer")}}}}}
    )
    limit = rules.server.methods["*"].rate_limit
    assert limit is not None and type(limit.key) is str and type(limit.limit) is float
    assert GovernanceRules.from_dict(rules.to_dict()) == rules


# -- the last resort: nothing but RuleError -------------------------------------------------------


def test_an_unforeseen_exception_becomes_a_rule_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(model, "_parse", broken)
    error = refused({})
    assert (
        str(error) == "rules: could not be validated (RecursionError: maximum recursion depth exceeded)"
    )
    assert isinstance(error.__cause__, RecursionError)  # the stack is kept for the log
    with pytest.raises(RuleError):
        GovernanceRules.from_json("{}")
    with pytest.raises(RuleError):
        parse_rules({})


def test_rules_built_in_code_that_cannot_be_read_are_refused() -> None:
    cycle: dict[str, Any] = {}
    cycle["*"] = cycle
    rules = GovernanceRules(server=ServerRules(methods=cycle))
    with pytest.raises(RuleError) as caught:
        parse_rules(rules)
    assert str(caught.value).startswith("rules: cannot be read (RecursionError: ")
    odd = ServerMethodRules(priority=[1])  # type: ignore[arg-type]
    with pytest.raises(RuleError) as caught:
        parse_rules(GovernanceRules(server=ServerRules(methods={"*": odd})))
    assert caught.value.path == "rules.server.methods['*'].priority"


# -- rule files -----------------------------------------------------------------------------------


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("rules.yaml", "[" * 5000 + "]" * 5000, "not valid YAML (RecursionError: "),
        ("rules.yaml", "adaptive: 2001-13-01\n", "not valid YAML (ValueError: "),
        ("rules.yaml", "1: true\n", "rules: field names must be strings"),
        ("rules.yaml", b"enabled: \xff\n", "not valid YAML: "),
        ("rules.json", "[" * DEEP, "rules: nesting too deep"),
        ("rules.json", b'{"enabled": true}\xff', "rules: not valid JSON"),
        ("rules.yaml", " " * (MAX_JSON_BYTES + 1), "too large"),
    ],
    ids=[
        "yaml deep",
        "yaml bad date",
        "yaml int key",
        "yaml bad utf-8",
        "json deep",
        "json bad utf-8",
        "too large",
    ],
)
def test_hostile_rule_files_are_refused(
    tmp_path: Path, name: str, text: str | bytes, message: str
) -> None:
    gov = Governance(clock=FakeClock(), cpu=lambda: 0.1)
    path = write(tmp_path / name, text)
    with pytest.raises(RuleError) as caught:
        gov.apply(path)
    assert message in str(caught.value)
    assert gov.generation == 0
