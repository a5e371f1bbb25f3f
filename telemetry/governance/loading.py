"""Rules from wherever they come: an object, a mapping, JSON text, or a JSON/YAML file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from telemetry.governance.rules import MAX_JSON_BYTES, GovernanceRules, RuleError

__all__ = ["RulesInput", "parse_rules"]

RulesInput = GovernanceRules | Mapping[str, Any] | str | Path


def parse_rules(rules: RulesInput) -> GovernanceRules:
    """Rules from an object (re-validated: code can build invalid ones), a mapping, JSON text or
    a JSON/YAML file path. Raises :class:`RuleError` and nothing else, whatever the input."""
    if isinstance(rules, GovernanceRules):
        try:
            data = rules.to_dict()
        except Exception as exc:  # an object built in code can hold anything (a cycle ...)
            raise RuleError("rules", f"cannot be read ({type(exc).__name__}: {str(exc)[:300]})") from exc
        return GovernanceRules.from_dict(data)
    if isinstance(rules, Path):
        return _load_file(rules)
    if isinstance(rules, str):
        return GovernanceRules.from_json(rules)
    return GovernanceRules.from_dict(rules)


def _load_file(path: Path) -> GovernanceRules:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RuleError(str(path), f"cannot read rules file: {exc}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise RuleError(str(path), f"too large: {len(raw)} bytes, at most {MAX_JSON_BYTES}")
    if path.suffix in (".yaml", ".yml"):
        import yaml  # a declared dependency (services read their YAML config with it too)

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise RuleError(str(path), f"not valid YAML: {exc}") from None
        except Exception as exc:  # what PyYAML lets through: RecursionError when deeply nested,
            # ValueError for an impossible date ...: a refusal all the same
            raise RuleError(str(path), f"not valid YAML ({type(exc).__name__}: {exc})") from None
        return GovernanceRules.from_dict(data or {})
    return GovernanceRules.from_json(raw)
