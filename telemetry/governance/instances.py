"""The live mechanism instances, keyed by what they serve and the rule they were built from.

An instance lives while its rule still governs what it serves: a rule change rebuilds only the
mechanisms whose rule changed, and an unchanged rule keeps its instance and state (an open breaker
stays open). Calls already running hold their own references, so dropping an instance never fails
one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from telemetry.governance.registry import CLIENT, SERVER, Scope
from telemetry.governance.rules import ClientRules, GovernanceRules, ServerRules, most_specific

__all__ = ["InstanceKey", "InstanceTable"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InstanceKey:
    """``kind`` (a mechanism name) on ``side`` ("server", "client" or "service"), built from
    ``rule``, serving what ``scope`` names: the fields it does not name are empty, so every
    method that resolves to the same scope shares one instance."""

    kind: str
    side: str
    scope: Scope
    rule: Hashable
    target: str = ""
    pattern: str = ""
    method: str = ""

    @classmethod
    def of(
        cls, kind: str, side: str, scope: Scope, rule: Hashable, *, target: str = "",
        pattern: str = "", method: str = "",
    ) -> InstanceKey:  # fmt: skip
        uses_target = scope in ("target", "target_pattern", "target_method")
        return cls(
            kind, side, scope, rule,
            target if uses_target else "",
            pattern if scope in ("pattern", "target_pattern") else "",
            method if scope == "target_method" else "",
        )  # fmt: skip


# Where each kind's rule sits in a method's rules (for the per-method kinds).
_RULE_OF: dict[str, Callable[[Any], Hashable | None]] = {
    **{spec.name: spec.rule_of for spec in (*SERVER, *CLIENT)},
    "retry_budget": lambda rules: rules.retry,
    "deferral": lambda rules: rules,  # a deferral serves one method under its whole rule
    "last_good": lambda rules: rules.fallback,
}


class InstanceTable:
    """Instances by :class:`InstanceKey`, built on first use; thread-safe."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock  # the engine's: apply() builds while holding it
        self._instances: dict[InstanceKey, object] = {}
        self._counts: Counter[str] = Counter()
        self.generation = 0  # of the rules last pruned for

    def get(self, key: InstanceKey, build: Callable[[], T], generation: int | None = None) -> T:
        """The instance for ``key``, built on first use. ``generation``: of the rules the caller
        resolves a plan from; an older one (a call that read the rules just before a swap) gets
        a fresh instance that is not kept, so a pruned rule's mechanism never comes back."""
        instance = self._instances.get(key)
        if instance is None:
            with self._lock:
                instance = self._instances.get(key)
                if instance is None:
                    instance = build()
                    if generation is None or generation >= self.generation:
                        self._instances[key] = instance
                        self._counts[key.kind] += 1
        return instance  # type: ignore[return-value]  # built by this key's own builder

    def count(self, kind: str) -> int:
        return self._counts[kind]

    def __contains__(self, key: InstanceKey) -> bool:
        return key in self._instances

    def of_kind(self, kind: str) -> list[tuple[InstanceKey, Any]]:
        with self._lock:
            return [(k, i) for k, i in self._instances.items() if k.kind == kind]

    def prune(self, rules: GovernanceRules, generation: int) -> list[tuple[InstanceKey, object]]:
        """Forget the instances whose rule no longer governs what they serve (call with the lock
        held, for the rules of ``generation``); returns them."""
        anywhere = set(_rule_objects(rules))
        gone = [k for k in self._instances if not _live(k, rules, anywhere)]
        self.generation = generation
        for key in gone:
            self._counts[key.kind] -= 1
        return [(key, self._instances.pop(key)) for key in gone]


def _live(key: InstanceKey, rules: GovernanceRules, anywhere: set[Hashable]) -> bool:
    if key.scope == "any":
        return key.rule in anywhere
    methods: Mapping[str, Any] = rules.server.methods if key.side == "server" else rules.client.methods
    rule_of = _RULE_OF[key.kind]
    if key.scope == "target":
        return any(rule_of(method_rules) == key.rule for method_rules in methods.values())
    if key.scope == "target_method":
        # A method a more specific pattern took over is governed by that pattern's rule now.
        rpc_method = key.method.lstrip("/")
        match = most_specific(methods, rpc_method.partition("/")[0], rpc_method)
        return match is not None and rule_of(match[1]) == key.rule
    method_rules = methods.get(key.pattern)
    return method_rules is not None and rule_of(method_rules) == key.rule


def _rule_objects(value: Any) -> Iterator[Hashable]:
    """Every hashable rule object inside ``value`` (the containers holding mappings are not)."""
    if hasattr(value, "__dataclass_fields__"):
        if not isinstance(value, GovernanceRules | ServerRules | ClientRules):
            yield value
        for name in value.__dataclass_fields__:
            yield from _rule_objects(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _rule_objects(item)
