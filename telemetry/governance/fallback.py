"""How a method answers instead of failing: the last good response, a default, or a fast path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telemetry.governance.degrade import LastGoodCache
from telemetry.governance.rules import FallbackRule

__all__ = ["CodeFallback", "FallbackPlan", "request_key"]


@dataclass(frozen=True)
class CodeFallback:
    """Fallback values that only code can give: a default response, or a fast-path function."""

    default: Any = None
    fast_path: Callable[[Any], Any] | None = None


class FallbackPlan:
    """How one method answers instead of failing."""

    __slots__ = ("cache", "code", "mode", "on_breaker", "on_failure", "on_limit")

    def __init__(
        self, rule: FallbackRule, code: CodeFallback | None, cache: LastGoodCache[Any] | None
    ) -> None:
        self.mode = rule.mode
        self.on_breaker = "breaker" in rule.on
        self.on_limit = "limit" in rule.on
        self.on_failure = "failure" in rule.on
        self.code = code
        self.cache = cache

    def wanted(self, trigger: str) -> bool:
        """Does a refusal by a gate with ``trigger`` ("breaker" or "limit") use this fallback?"""
        return self.on_breaker if trigger == "breaker" else self.on_limit

    def answer(self, request: Any) -> tuple[bool, Any]:
        """(True, response) when there is something to answer with."""
        if self.mode == "last_good" and self.cache is not None:
            cached = self.cache.get(request_key(request))
            if cached is not None:
                return True, cached
        code = self.code
        if code is None:
            return False, None
        if self.mode == "fast_path" and code.fast_path is not None:
            return True, code.fast_path(request)
        if code.default is not None:
            return True, code.default
        return False, None

    def remember(self, request: Any, response: Any) -> None:
        if self.cache is not None and response is not None:
            self.cache.put(request_key(request), response)


def request_key(request: Any) -> Any:
    serialize = getattr(request, "SerializeToString", None)
    if serialize is not None:
        return serialize(deterministic=True)
    return repr(request)
