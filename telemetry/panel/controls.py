"""The panel's controls as pure transforms of one control key's value (see ``ControlPlane.update``).

Each function returns a transform: current value (parsed JSON; for a section, the section in force
when the key is not set yet) -> new value. They change only what the control is about, so a
breaker flip keeps the bulkheads, retries and fallbacks beside it. Method rules are keyed by the
patterns of the rules model (``*``, ``pkg.Service/*``, ``pkg.Service/Method``); a control on a
pattern that has no entry yet starts from the entry that governs it now (the most specific one),
so adding ``pkg.Payment/*`` to flip its breaker does not silently drop what ``*`` gave it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from telemetry.control.cluster_limits import cluster_entry
from telemetry.governance.rules import COUNT_MAX, governing_entry, validate_pattern

__all__ = [
    "governing_rule", "methods_of", "set_adaptive", "set_breaker", "set_cluster_limit",
    "set_concurrency_cap", "set_enabled", "set_fault", "set_rate_limit", "set_sampling",
    "set_shed_methods", "set_shedding",
]  # fmt: skip

Transform = Callable[[Any], Any]
BreakerForce = str  # "" (automatic), "open", "closed"


def set_rate_limit(pattern: str, limit: Mapping[str, Any] | None) -> Transform:
    """``server`` section: the rate limit of ``pattern`` (None: no rate limit there)."""
    validate_pattern(pattern, "pattern")

    def apply(section: Any) -> Any:
        section, rule = _method_rule(section, pattern)
        if limit is None:
            rule.pop("rate_limit", None)
        else:
            rule["rate_limit"] = dict(limit)
        return _tidy(section, pattern)

    return apply


def set_breaker(
    pattern: str, *, force: BreakerForce, thresholds: Mapping[str, Any] | None = None
) -> Transform:
    """``client`` section: the breaker of calls matching ``pattern``: ``force`` ``""`` (automatic),
    ``"open"`` or ``"closed"``, with ``thresholds`` merged into its settings."""
    validate_pattern(pattern, "pattern")
    if force not in ("", "open", "closed"):
        raise ValueError(f"force must be '', 'open' or 'closed', got {force!r}")

    def apply(section: Any) -> Any:
        section, rule = _method_rule(section, pattern)
        breaker = dict(rule.get("breaker") or {})
        breaker.update(thresholds or {})
        breaker["force"] = force
        rule["breaker"] = breaker
        return section

    return apply


def set_adaptive(settings: Mapping[str, Any]) -> Transform:
    """``adaptive`` section: merge ``settings`` (``enabled``, ``cpu_threshold``, ``tolerance`` ...)."""

    def apply(section: Any) -> Any:
        merged = dict(section) if isinstance(section, dict) else {}
        merged.update(settings)
        return merged

    return apply


def set_shedding(*, enabled: bool, levels: Iterable[float] | None = None) -> Transform:
    """``shedding`` section: priority shedding on/off and the CPU pressures of its three levels."""

    def apply(section: Any) -> Any:
        merged = dict(section) if isinstance(section, dict) else {}
        merged["enabled"] = enabled
        if levels is not None:
            merged["levels"] = list(levels)
        return merged

    return apply


def set_shed_methods(methods: Iterable[str], candidates: Iterable[str]) -> Transform:
    """``server`` section: the methods of ``candidates`` in ``methods`` get priority ``low`` (shed
    first under pressure); the other candidates marked ``low`` go back to ``normal``."""
    chosen = set(methods)
    every = set(candidates) | chosen
    for pattern in every:
        validate_pattern(pattern, "methods")

    def apply(section: Any) -> Any:
        for pattern in sorted(every):
            current = methods_of(section).get(pattern)
            low = isinstance(current, dict) and current.get("priority") == "low"
            if pattern in chosen and not low:
                section, rule = _method_rule(section, pattern)
                rule["priority"] = "low"
            elif pattern not in chosen and low:
                section, rule = _method_rule(section, pattern)
                rule["priority"] = "normal"
                section = _tidy(section, pattern)
        return section

    return apply


def set_enabled(enabled: bool) -> Transform:
    """``enabled``: every governance mechanism of the service on or off (the master switch)."""
    return lambda _: enabled


def set_fault(pattern: str, fault: Mapping[str, Any] | None) -> Transform:
    """``faults``: what to inject into calls matching ``pattern`` (None: nothing)."""
    validate_pattern(pattern, "pattern")

    def apply(faults: Any) -> Any:
        merged = dict(faults) if isinstance(faults, dict) else {}
        if fault is None or not any(fault.get(k) for k in ("latency_ms", "error_rate", "cpu_burn_ms")):
            merged.pop(pattern, None)
        else:
            merged[pattern] = dict(fault)
        return merged or None

    return apply


def set_sampling(*, ratio: float | None = None, traces_per_second: float | None = None) -> Transform:
    """``sampling``: a share of new traces, or at most N per second; neither: back to the
    sampler the service was configured with."""
    if ratio is not None and traces_per_second is not None:
        raise ValueError("give ratio or traces_per_second, not both")
    if ratio is not None:
        return lambda _: {"ratio": ratio}
    if traces_per_second is not None:
        return lambda _: {"traces_per_second": traces_per_second}
    return lambda _: None


def set_cluster_limit(pattern: str, total: float | None, burst: int | None = None) -> Transform:
    """``cluster``: the calls per second ``pattern`` may take across all instances together, and
    optionally the burst of its token bucket (None: one second's worth)."""
    validate_pattern(pattern, "pattern")

    def apply(cluster: Any) -> Any:
        merged = dict(cluster) if isinstance(cluster, dict) else {}
        if total is None:
            merged.pop(pattern, None)
        else:
            merged[pattern] = cluster_entry(total, burst)
        return merged or None

    return apply


SERVICE_CAP = "*"
"""The pattern a service's concurrency cap is written on, and that its copies share."""


def set_concurrency_cap(max_concurrent: int | None) -> Transform:
    """``server`` section: at most ``max_concurrent`` calls in flight on each instance, for all
    the service's methods together (None: no such cap). Written as the ``*`` entry's ``bulkhead``
    (replacing one ``*`` had) and copied, marked ``shared: "*"``, onto every other entry without a
    bulkhead of its own, so one count covers the methods that have rules of their own too; a
    bulkhead of a narrower pattern's own stays (a count of its own)."""
    if max_concurrent is not None and (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or not 1 <= max_concurrent <= COUNT_MAX
    ):
        raise ValueError(f"max_concurrent must be a whole number from 1 to {COUNT_MAX}, "
                         f"got {max_concurrent!r:.40}")  # fmt: skip
    cap = None if max_concurrent is None else {"max_concurrent": max_concurrent, "shared": SERVICE_CAP}

    def apply(section: Any) -> Any:
        section = dict(section) if isinstance(section, dict) else {}
        methods = {k: dict(v) if isinstance(v, dict) else v for k, v in methods_of(section).items()}
        section["methods"] = methods
        if cap is not None:
            methods.setdefault(SERVICE_CAP, {})
        for pattern, rule in methods.items():
            if not isinstance(rule, dict):
                continue
            current = rule.get("bulkhead")
            ours = isinstance(current, dict) and current.get("shared") == SERVICE_CAP
            if cap is None and ours:
                del rule["bulkhead"]
            elif cap is not None and (current is None or ours or pattern == SERVICE_CAP):
                rule["bulkhead"] = dict(cap)
        return _tidy(section, SERVICE_CAP) if SERVICE_CAP in methods else section

    return apply


# -- helpers -------------------------------------------------------------------------------------


def methods_of(section: Any) -> dict[str, Any]:
    """A section's ``methods`` (empty when it has none or is malformed)."""
    if isinstance(section, dict) and isinstance(section.get("methods"), dict):
        return section["methods"]  # type: ignore[no-any-return]
    return {}


def _method_rule(section: Any, pattern: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``section`` with an entry for ``pattern`` (copied from the entry governing it now when
    missing), and that entry."""
    section = dict(section) if isinstance(section, dict) else {}
    methods = dict(methods_of(section))
    section["methods"] = methods
    rule = methods.get(pattern)
    if not isinstance(rule, dict):
        governing = governing_entry(methods, pattern)
        rule = copy.deepcopy(governing) if isinstance(governing, dict) else {}
    else:
        rule = dict(rule)
    methods[pattern] = rule
    return section, rule


def governing_rule(section: Any, pattern: str) -> dict[str, Any]:
    """The entry of ``section`` that governs ``pattern`` now (its own, else the most specific
    broader one), empty when none does."""
    found = governing_entry(methods_of(section), pattern)
    return found if isinstance(found, dict) else {}


def _empty(rule: Any) -> bool:
    """An entry with nothing set (or only defaults)."""
    return isinstance(rule, dict) and not {
        k: v for k, v in rule.items() if v not in (None, "normal", False)
    }


def _tidy(section: dict[str, Any], pattern: str) -> dict[str, Any]:
    """Drop an entry left empty (or only at defaults) when that changes nothing: no broader
    pattern gives rules to its methods. Under a broader entry that does (a rate limit on ``*``,
    priority ``low``), the empty entry is what says "not here", so it stays."""
    methods = section.get("methods", {})
    if _empty(methods.get(pattern)):
        broader = governing_entry({k: v for k, v in methods.items() if k != pattern}, pattern)
        if broader is None or _empty(broader):
            del methods[pattern]
    return section
