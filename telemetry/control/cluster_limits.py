"""Cluster-wide rate limits in the rules document: the ``cluster`` key of a service's live rules.

``/governance/<service>/cluster`` maps a method pattern to the limit of the whole service (all its
instances together): a number (calls per second, or per window when the pattern's rate limit has
one), or ``{"limit": <number>, "burst": <calls>}`` to size the token bucket's burst too. The burst
matters when the limit sits near what the service can serve: a full bucket of one second's worth
(the default) lets a second of work in at once, and every admitted call then waits behind it (a
capacity test recommends a burst from the service's low-load latency, see
:mod:`telemetry.load.capacity`). Each instance puts ``total / instances`` in force as the pattern's
``server.methods.<pattern>.rate_limit.limit`` (a 1 s token bucket when the pattern has no rate
limit), with ``ceil(burst / instances)`` as its burst, never less than the smallest rate limit or
one call: a tiny total over many instances admits a little more than the total rather than being
refused when instances join. The share keeps the whole as ``cluster_limit`` / ``cluster_burst``:
with a shared store (``TELEMETRY_REDIS_URL``, :mod:`telemetry.governance.cluster_limit`) the
instances take their tokens from one bucket of that size, exact whatever the traffic's skew, and
fall back to the share while the store is unreachable.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telemetry.governance.rules import (
    COUNT_MAX,
    LIMIT_MAX,
    LIMIT_MIN,
    RuleError,
    governing_entry,
    number_in_range,
    validate_pattern,
)

__all__ = [
    "ClusterLimit",
    "cluster_entry",
    "mark_cluster_limits",
    "parse_cluster",
    "split_cluster_limits",
]

CLUSTER = "cluster"
_ENTRY_FIELDS = ("limit", "burst")


@dataclass(frozen=True, slots=True)
class ClusterLimit:
    """One pattern's limit for the whole service; ``burst`` None: the bucket's default."""

    total: float
    burst: int | None = None


def cluster_entry(total: float, burst: int | None = None) -> float | dict[str, float | int]:
    """The JSON a ``cluster`` key holds for one pattern: the number alone when there is no burst."""
    return total if burst is None else {"limit": total, "burst": burst}


def parse_cluster(value: Any) -> dict[str, ClusterLimit]:
    """The ``cluster`` key's value: method pattern -> :class:`ClusterLimit`. A limit is within the
    range of a rate limit (0.001 to 1e6), a burst a whole number of calls from 1 to 1e6; booleans,
    non-finite numbers and unknown fields are refused, the RuleError naming the entry."""
    if not isinstance(value, dict):
        raise RuleError(CLUSTER, f"must be an object, got {type(value).__name__}")
    limits: dict[str, ClusterLimit] = {}
    for pattern, entry in value.items():
        path = f"{CLUSTER}.{pattern if len(pattern) <= 100 else pattern[:100] + '...'}"
        validate_pattern(pattern, path)
        limits[pattern] = _parse_entry(entry, path)
    return limits


def _parse_entry(entry: Any, path: str) -> ClusterLimit:
    if not isinstance(entry, dict):
        return ClusterLimit(number_in_range(entry, path, LIMIT_MIN, LIMIT_MAX))
    unknown = sorted(str(k)[:40] for k in entry if k not in _ENTRY_FIELDS)
    if unknown:
        raise RuleError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(_ENTRY_FIELDS)})")
    if "limit" not in entry:
        raise RuleError(f"{path}.limit", "required")
    total = number_in_range(entry["limit"], f"{path}.limit", LIMIT_MIN, LIMIT_MAX)
    burst = entry.get("burst")
    if burst is None:
        return ClusterLimit(total)
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= COUNT_MAX:
        raise RuleError(
            f"{path}.burst", f"must be a whole number from 1 to {COUNT_MAX}, got {burst!r:.40}"
        )
    return ClusterLimit(total, burst)


def _server_methods(doc: dict[str, Any]) -> dict[str, Any] | None:
    """``doc["server"]["methods"]``, created when missing; None when malformed (``from_dict``
    reports that)."""
    server = doc.setdefault("server", {})
    methods = server.setdefault("methods", {}) if isinstance(server, dict) else None
    return methods if isinstance(methods, dict) else None


def mark_cluster_limits(doc: dict[str, Any], limits: Mapping[str, ClusterLimit | float]) -> None:
    """Each pattern's rate limit becomes its total (and burst), marked ``cluster`` (a 1 s token
    bucket when the pattern has no rate limit)."""
    methods = _server_methods(doc)
    if methods is None:
        return
    for pattern, found in limits.items():
        cluster = found if isinstance(found, ClusterLimit) else ClusterLimit(found)
        if pattern not in methods:
            # A new entry replaces the broader one for its methods: it starts as a copy of it, so
            # the limit does not take away what that entry gave them (a priority, a service cap),
            # all but its rate limit, which the cluster limit replaces.
            governing = governing_entry(methods, pattern)
            entry = copy.deepcopy(governing) if isinstance(governing, dict) else {}
            entry.pop("rate_limit", None)
            methods[pattern] = entry
        rule = methods[pattern]
        if not isinstance(rule, dict):
            continue
        limit = rule.get("rate_limit")
        if limit is None:
            limit = {"algorithm": "token_bucket", "window": 1.0}
        if not isinstance(limit, dict):
            continue
        marked = {**limit, "limit": cluster.total, "cluster": True, "shared": pattern}
        if cluster.burst is not None:
            marked["burst"] = cluster.burst
        rule["rate_limit"] = marked
        # A more specific pattern's rule replaces this one for its methods: one without a limit of
        # its own shares this limiter, so the total is the service's (or the pattern's) whole.
        # (A rule from code, serialised, says "rate_limit": None: no limit of its own either.)
        for other, other_rule in methods.items():
            if (
                other != pattern
                and _covers(pattern, other)
                and isinstance(other_rule, dict)
                and other_rule.get("rate_limit") is None
            ):
                other_rule["rate_limit"] = dict(marked)


def _covers(broad: str, pattern: str) -> bool:
    """Does the method pattern ``broad`` (``*`` or ``pkg.Service/*``) match what ``pattern`` does?"""
    return broad == "*" or (broad.endswith("/*") and pattern.startswith(broad[:-1]))


def split_cluster_limits(doc: dict[str, Any], count: int) -> None:
    """Rate limits marked ``cluster: true`` hold the whole service's limit: put this instance's
    share in force, unmarked (the document is assembled from the totals each time)."""
    methods = _server_methods(doc)
    if methods is None:
        return
    for rule in methods.values():
        limit = rule.get("rate_limit") if isinstance(rule, dict) else None
        if isinstance(limit, dict) and limit.get("cluster") is True:
            total = limit.get("limit")
            # Out of range (or not a number): left whole, so from_dict reports the total written.
            if (
                isinstance(total, int | float)
                and not isinstance(total, bool)
                and LIMIT_MIN <= total <= LIMIT_MAX
            ):
                share = max(total / count, LIMIT_MIN)  # a valid total never splits into an invalid share
                # The whole stays on the share: an exact limit in a shared store (Redis) uses it,
                # the share being what the instance falls back to.
                rule["rate_limit"] = {
                    **limit, "limit": share, "cluster": False, "cluster_limit": total,
                    "cluster_burst": None,
                }  # fmt: skip
                burst = limit.get("burst")
                if isinstance(burst, int) and not isinstance(burst, bool) and 1 <= burst <= COUNT_MAX:
                    rule["rate_limit"]["burst"] = max(1, math.ceil(burst / count))
                    rule["rate_limit"]["cluster_burst"] = burst
