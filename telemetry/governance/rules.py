"""One typed, validated rules model for every governance mechanism.

Rules are frozen dataclasses, JSON round-trippable (:meth:`GovernanceRules.from_dict` /
:meth:`~GovernanceRules.to_dict`). Parsing checks every field (type, range, choices, unknown keys) and
raises :class:`RuleError` naming the field path, so a bad rule from code, a file or etcd is refused
as a whole and the rules in force stay. Server and client rules are keyed by a method pattern:
``"*"`` (every method), ``"pkg.Service/*"`` or ``"pkg.Service/Method"``; the most specific wins. A
pattern is also the scope of the limiter it creates: a rate limit under ``"*"`` is one limiter for
the whole service, under ``"pkg.Service/Method"`` one for that method.

    {"server": {"methods": {"*": {"rate_limit": {"algorithm": "token_bucket", "limit": 100}}}},
     "client": {"methods": {"*": {"breaker": {"failure_rate_threshold": 0.5}}}},
     "adaptive": {"enabled": true, "cpu_threshold": 0.8}}

Hostile input is refused, never crashes the parser nor slips through:

* every number has a closed range, written in its class's docstring (some also accept 0, "off").
  The lower bounds keep sub-normal values out (``1e-310`` calls/s would make ``1 / limit`` infinite,
  and an infinite interval admits every call), the upper ones keep the arithmetic far from overflow;
  NaN, infinities and booleans are never numbers;
* JSON text is bounded before it is parsed (:data:`MAX_JSON_BYTES`, :data:`MAX_JSON_DEPTH`), so a
  100,000-deep value is refused with ``nesting too deep`` instead of exhausting the recursion;
* a value echoed in a message is shortened;
* :meth:`GovernanceRules.from_dict` and :meth:`~GovernanceRules.from_json` raise nothing but
  :class:`RuleError`: an exception the checks did not foresee (a bug) still becomes one, chained to
  it (``__cause__``) so its stack can be logged.

The rule classes are here; the parsing machinery (bounded JSON, conversion by type hint, range
checks) is in ``telemetry.governance.rule_parsing``, :class:`RuleError` in ``telemetry._validation``;
both are re-exported from here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from telemetry._validation import RuleError, finite_number
from telemetry._validation import short_repr as _show
from telemetry.governance.rule_parsing import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    bounded,
    json_text,
    load_json,
    number_in_range,
    validate_pattern,
)
from telemetry.governance.rule_parsing import describe as _describe
from telemetry.governance.rule_parsing import dump as _dump
from telemetry.governance.rule_parsing import parse as _parse  # a global here: tests replace it

__all__ = [
    "COUNT_MAX",
    "DAY",
    "DEFAULT_FAILURE_CODES",
    "DEFAULT_RETRY_CODES",
    "FACTOR_MAX",
    "GRPC_CODE_NAMES",
    "HOUR",
    "LIMIT_MAX",
    "LIMIT_MIN",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "RAMP_STEPS_MAX",
    "SECONDS_MIN",
    "SHED_LEVEL_RANGE",
    "AdaptiveRule",
    "Algorithm",
    "BreakerRule",
    "BrownoutRule",
    "BulkheadRule",
    "ClientMethodRules",
    "ClientRules",
    "FallbackMode",
    "FallbackRule",
    "FallbackTrigger",
    "GovernanceRules",
    "PriorityName",
    "RateLimitRule",
    "RetryRule",
    "RuleError",
    "ServerMethodRules",
    "ServerRules",
    "SheddingRule",
    "ThrottleRule",
    "finite_number",
    "json_text",
    "load_json",
    "most_specific",
    "number_in_range",
    "validate_pattern",
]

_V = TypeVar("_V")

LIMIT_MIN = 0.001
"""Smallest rate limit (calls per second, per window or in flight): one call in ~17 minutes."""
LIMIT_MAX = 1_000_000.0
"""Largest rate limit: a million calls per second is far beyond one Python process."""
SECONDS_MIN = 0.001
"""Shortest duration (seconds) of any kind: a millisecond."""
HOUR = 3600.0
DAY = 86_400.0
COUNT_MAX = 1_000_000
"""Largest count of calls, keys, entries: memory and loops stay bounded."""
FACTOR_MAX = 100.0
"""Largest multiplier or factor (backoff, cold factor, tolerance, throttle k)."""
RAMP_STEPS_MAX = 20
"""Most steps of a breaker's recovery ramp."""


GRPC_CODE_NAMES = (
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
)  # fmt: skip
DEFAULT_FAILURE_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED", "UNKNOWN")
DEFAULT_RETRY_CODES = ("UNAVAILABLE", "RESOURCE_EXHAUSTED")

Algorithm = Literal[
    "concurrency", "fixed_window", "sliding_window", "token_bucket", "leaky_bucket", "warm_up"
]
FallbackMode = Literal["default", "last_good", "fast_path"]
FallbackTrigger = Literal["breaker", "limit", "failure"]
PriorityName = Literal["critical", "high", "normal", "low"]


@dataclass(frozen=True, kw_only=True)
class RateLimitRule:
    """A limiter for the scope of its pattern, optionally one per key taken from the call.

    ``key``: ``""`` (one limiter), ``"peer"`` (client IP), ``"metadata:<name>"`` or
    ``"baggage:<name>"`` (user, tenant ...). Keys in ``allow`` bypass the limit (the VIP case).
    ``limit`` is calls per ``window`` for the window algorithms, calls per second for the buckets,
    and calls in flight for ``concurrency``. ``cluster``: the limit is for the whole service and is
    split across the live instances (the discovery layer tells how many). ``shared``: a broader
    pattern whose limiter this rule's methods share (one limit for them all; "": its own pattern's)
    -- how a cluster limit on ``*`` reaches methods that have a rule of their own.
    ``cluster_limit`` / ``cluster_burst``: set by the split on the share it produces (None
    otherwise): the whole service's limit and burst, for an exact limit kept in a shared store
    (``telemetry.governance.cluster_limit``), the share being the fallback.

    Ranges: ``limit`` 0.001 to 1e6; ``window`` 0.001 to 86400 s (a daily quota); ``burst`` 1 to 1e6
    calls (None: one second's worth); ``max_wait`` 0 or 0.001 to 60 s; ``warm_up`` 0.001 to 3600 s;
    ``cold_factor`` 1 to 100; ``max_keys`` 1 to 1e6.
    """

    algorithm: Algorithm = "token_bucket"
    limit: float = bounded(minimum=LIMIT_MIN, maximum=LIMIT_MAX)
    window: float = bounded(default=1.0, minimum=SECONDS_MIN, maximum=DAY)
    burst: int | None = bounded(default=None, minimum=1, maximum=COUNT_MAX)
    max_wait: float = bounded(default=0.0, minimum=SECONDS_MIN, maximum=60.0, off=True)
    warm_up: float = bounded(default=10.0, minimum=SECONDS_MIN, maximum=HOUR)
    cold_factor: float = bounded(default=3.0, minimum=1.0, maximum=FACTOR_MAX)
    key: str = ""
    allow: tuple[str, ...] = ()
    max_keys: int = bounded(default=10_000, minimum=1, maximum=COUNT_MAX)
    cluster: bool = False
    shared: str = ""
    cluster_limit: float | None = bounded(default=None, minimum=LIMIT_MIN, maximum=LIMIT_MAX)
    cluster_burst: int | None = bounded(default=None, minimum=1, maximum=COUNT_MAX)

    def check(self, path: str) -> None:
        if self.shared:
            validate_pattern(self.shared, f"{path}.shared")
        source, _, name = self.key.partition(":")
        if self.key and not (self.key == "peer" or (source in ("metadata", "baggage") and name)):
            raise RuleError(
                f"{path}.key",
                f"must be '', 'peer', 'metadata:<name>' or 'baggage:<name>', got {_show(self.key)}",
            )


@dataclass(frozen=True, kw_only=True)
class BreakerRule:
    """Client-side circuit breaker, one per target and method (resilience4j semantics plus a
    gradual recovery ramp). ``force``: ``"open"`` / ``"closed"`` pin the state by hand.

    Ranges: ``window_size`` 1 to 10000 (calls, or seconds for a time window); ``minimum_calls`` 1
    to 1e6; ``failure_rate_threshold`` and ``slow_call_rate_threshold`` 0.001 to 1;
    ``slow_call_duration``, ``open_wait``, ``max_open_wait`` and ``ramp_step_duration`` 0.001 to
    3600 s; ``consecutive_failures`` 0 (off) to 1e6; ``backoff_multiplier`` 1 to 100;
    ``half_open_probes`` 1 to 10000; ``ramp_steps`` 1 to 20 fractions rising strictly within
    0.001 to 1, the last 1.0.
    """

    window_type: Literal["count", "time"] = "count"
    window_size: int = bounded(default=20, minimum=1, maximum=10_000)
    minimum_calls: int = bounded(default=10, minimum=1, maximum=COUNT_MAX)
    failure_rate_threshold: float = bounded(default=0.5, minimum=0.001, maximum=1.0)
    slow_call_rate_threshold: float = bounded(default=1.0, minimum=0.001, maximum=1.0)
    slow_call_duration: float = bounded(default=1.0, minimum=SECONDS_MIN, maximum=HOUR)
    consecutive_failures: int = bounded(default=0, minimum=0, maximum=COUNT_MAX)
    open_wait: float = bounded(default=5.0, minimum=SECONDS_MIN, maximum=HOUR)
    # caps the backoff: recovery is part of the design
    max_open_wait: float = bounded(default=30.0, minimum=SECONDS_MIN, maximum=HOUR)
    backoff_multiplier: float = bounded(default=2.0, minimum=1.0, maximum=FACTOR_MAX)
    half_open_probes: int = bounded(default=3, minimum=1, maximum=10_000)
    ramp_steps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    ramp_step_duration: float = bounded(default=2.0, minimum=SECONDS_MIN, maximum=HOUR)
    failure_codes: tuple[str, ...] = DEFAULT_FAILURE_CODES
    force: Literal["", "open", "closed"] = ""

    def check(self, path: str) -> None:
        _check_codes(self.failure_codes, f"{path}.failure_codes")
        steps = self.ramp_steps
        if (
            not 0 < len(steps) <= RAMP_STEPS_MAX
            or any(not 0.001 <= s <= 1 for s in steps)
            or any(a >= b for a, b in itertools.pairwise(steps))
            or steps[-1] != 1
        ):
            raise RuleError(
                f"{path}.ramp_steps",
                f"must rise strictly within [0.001, 1.0] and end at 1.0, in at most {RAMP_STEPS_MAX}"
                f" steps, got {_show(list(steps))}",
            )
        if self.max_open_wait < self.open_wait:
            raise RuleError(f"{path}.max_open_wait", "must be >= open_wait")


@dataclass(frozen=True, kw_only=True)
class ThrottleRule:
    """Client-side adaptive throttling (Google SRE), one per target.

    Ranges: ``k`` 1 to 100; ``window`` 0.001 to 3600 s; ``protected`` 0 to 1e6 calls."""

    k: float = bounded(default=1.5, minimum=1.0, maximum=FACTOR_MAX)
    window: float = bounded(default=10.0, minimum=SECONDS_MIN, maximum=HOUR)
    protected: int = bounded(default=5, minimum=0, maximum=COUNT_MAX)


@dataclass(frozen=True, kw_only=True)
class BulkheadRule:
    """At most ``max_concurrent`` calls in flight (1 to 1e6): on a client, to one downstream
    (target) for the pattern's scope; on a server, of the pattern's methods on this instance.
    ``shared``: a broader pattern whose cap this rule's methods share (one count for them all;
    "": its own pattern's) -- how a cap on a whole service (``*``) reaches methods that have a
    rule of their own, as ``RateLimitRule.shared`` does for a cluster limit."""

    max_concurrent: int = bounded(minimum=1, maximum=COUNT_MAX)
    shared: str = ""

    def check(self, path: str) -> None:
        if self.shared:
            validate_pattern(self.shared, f"{path}.shared")


@dataclass(frozen=True, kw_only=True)
class RetryRule:
    """Retries of idempotent methods only, on ``codes`` only, within a budget (``budget_ratio`` of
    calls plus ``budget_min_per_second``), so retries cannot amplify an outage.

    Ranges: ``max_attempts`` 1 to 10 (first attempt included); ``initial_backoff`` and
    ``max_backoff`` 0 or 0.001 to 60 s; ``multiplier`` 1 to 100; ``jitter`` and ``budget_ratio`` 0
    or 0.001 to 1; ``budget_min_per_second`` 0 or 0.001 to 1e6.
    """

    max_attempts: int = bounded(default=3, minimum=1, maximum=10)
    initial_backoff: float = bounded(default=0.05, minimum=SECONDS_MIN, maximum=60.0, off=True)
    max_backoff: float = bounded(default=1.0, minimum=SECONDS_MIN, maximum=60.0, off=True)
    multiplier: float = bounded(default=2.0, minimum=1.0, maximum=FACTOR_MAX)
    jitter: float = bounded(default=0.2, minimum=0.001, maximum=1.0, off=True)
    codes: tuple[str, ...] = DEFAULT_RETRY_CODES
    budget_ratio: float = bounded(default=0.1, minimum=0.001, maximum=1.0, off=True)
    budget_min_per_second: float = bounded(default=1.0, minimum=LIMIT_MIN, maximum=LIMIT_MAX, off=True)

    def check(self, path: str) -> None:
        _check_codes(self.codes, f"{path}.codes")
        if self.initial_backoff > self.max_backoff:
            raise RuleError(f"{path}.initial_backoff", "must be <= max_backoff")


@dataclass(frozen=True, kw_only=True)
class FallbackRule:
    """What to answer instead of failing: a ``default`` value or ``fast_path`` function registered in
    code (:meth:`Governance.register_fallback`), or the ``last_good`` response cached for the same
    request. ``on``: when to use it (breaker open, call limited, downstream failed).

    Ranges: ``cache_size`` 1 to 1e6 entries; ``cache_ttl`` 0.001 to 86400 s."""

    mode: FallbackMode = "default"
    on: tuple[FallbackTrigger, ...] = ("breaker", "limit", "failure")
    cache_size: int = bounded(default=1024, minimum=1, maximum=COUNT_MAX)
    cache_ttl: float = bounded(default=300.0, minimum=SECONDS_MIN, maximum=DAY)


@dataclass(frozen=True, kw_only=True)
class BrownoutRule:
    """Refuse ``share`` of the pattern's calls on purpose (0.001 to 1; 0: none), planned
    degradation of a non-critical method (``telemetry.governance.brownout``)."""

    share: float = bounded(minimum=0.001, maximum=1.0, off=True)


@dataclass(frozen=True, kw_only=True)
class ServerMethodRules:
    """Server-side rules for the methods a pattern matches. ``priority`` and ``write`` drive
    priority shedding (non-core writes go first); ``fallback`` answers limited calls.
    ``bulkhead`` caps the calls in flight beside ``rate_limit`` (which a cluster limit may take):
    on an event loop a call waits for the work in flight ahead of it, which a rate bounds only on
    average (benchmarks/RESULTS.md, capacity)."""

    brownout: BrownoutRule | None = None
    rate_limit: RateLimitRule | None = None
    bulkhead: BulkheadRule | None = None
    priority: PriorityName = "normal"
    write: bool = False
    fallback: FallbackRule | None = None


@dataclass(frozen=True, kw_only=True)
class ClientMethodRules:
    """Client-side rules for the methods a pattern matches (per target). ``idempotent`` allows
    retries; ``defer`` queues a call that would fail (at most ``defer_max_items``, 1 to 100000) to
    send it when the target recovers, answering the caller with the fallback meanwhile."""

    breaker: BreakerRule | None = None
    throttle: ThrottleRule | None = None
    bulkhead: BulkheadRule | None = None
    retry: RetryRule | None = None
    idempotent: bool = False
    fallback: FallbackRule | None = None
    defer: bool = False
    defer_max_items: int = bounded(default=1000, minimum=1, maximum=100_000)

    def check(self, path: str) -> None:
        if self.defer and (self.fallback is None or self.fallback.mode == "last_good"):
            raise RuleError(
                f"{path}.defer",
                "needs a fallback with mode 'default' or 'fast_path' to answer the caller while queued",
            )


@dataclass(frozen=True, kw_only=True)
class AdaptiveRule:
    """Server-side adaptive shedding from live CPU (fraction of one core), event-loop lag and
    latency (BBR plus a Gradient2 limit).

    Ranges: ``cpu_threshold`` 0.01 to 4 (cores); ``cpu_max`` 0.01 to 64 and above
    ``cpu_threshold``; ``loop_lag_threshold`` 0.001 to 60 s; ``cool_off`` 0 or 0.001 to 3600 s;
    ``min_limit``, ``initial_limit``, ``max_limit`` 1 to 1e6 (in that order); ``tolerance`` 1 to
    100; ``gil_switch_interval`` 0 or 1e-6 to 0.005 s; ``queue_target`` 0 or 0.0001 to 10 s;
    ``queue_interval`` 0.001 to 60 s and above ``queue_target``.
    """

    enabled: bool = False
    cpu_threshold: float = bounded(default=0.8, minimum=0.01, maximum=4.0)
    loop_lag_threshold: float = bounded(default=0.05, minimum=SECONDS_MIN, maximum=60.0)
    cool_off: float = bounded(default=1.0, minimum=SECONDS_MIN, maximum=HOUR, off=True)
    min_limit: int = bounded(default=1, minimum=1, maximum=COUNT_MAX)
    max_limit: int = bounded(default=1000, minimum=1, maximum=COUNT_MAX)
    initial_limit: int = bounded(default=20, minimum=1, maximum=COUNT_MAX)
    tolerance: float = bounded(default=1.5, minimum=1.0, maximum=FACTOR_MAX)
    # The limit shrinks linearly between cpu_threshold and cpu_max (go-zero). One saturated core
    # is 1.0, the normal state of a busy CPU-bound Python process, so the default leaves the BBR
    # bound nearly whole there and shrinks it only when native threads push CPU further.
    cpu_max: float = bounded(default=2.0, minimum=0.01, maximum=64.0)
    # A CPU-bound handler holds the GIL for Python's whole switch interval (5 ms) before grpc's
    # poller thread can take a new call, let alone refuse it: ~200 admission decisions a second.
    # While adaptive shedding is on, the process switch interval is set to this (0: leave it).
    # 0.2 ms: with admission in the poller thread (telemetry.rpc.admission), 0.2 ms gave p99s
    # 10-15% lower than 0.5 ms at 2x and 4x overload, same goodput; 2 and 5 ms were far worse
    # (benchmarks/RESULTS.md, overload). 1 us is the finest interval CPython keeps.
    gil_switch_interval: float = bounded(default=0.0002, minimum=1e-6, maximum=0.005, off=True)
    # Queue-delay shedding (CoDel, see governance.codel) for sync servers built by Telemetry.server:
    # when even the least-delayed call of an interval waited over queue_target, calls that waited
    # over twice that are refused as they reach a worker. 0 turns it off.
    queue_target: float = bounded(default=0.005, minimum=0.0001, maximum=10.0, off=True)
    queue_interval: float = bounded(default=0.1, minimum=SECONDS_MIN, maximum=60.0)

    def check(self, path: str) -> None:
        if self.cpu_max <= self.cpu_threshold:
            raise RuleError(f"{path}.cpu_max", "must be > cpu_threshold")
        if self.min_limit > self.max_limit:
            raise RuleError(f"{path}.min_limit", "must be <= max_limit")
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise RuleError(f"{path}.initial_limit", "must be between min_limit and max_limit")
        if self.queue_target >= self.queue_interval:
            raise RuleError(f"{path}.queue_interval", "must be > queue_target")


SHED_LEVEL_RANGE = (0.01, 64.0)


@dataclass(frozen=True, kw_only=True)
class SheddingRule:
    """Priority shedding: at these CPU pressures turn off low-priority work, writes first.
    ``levels``: three pressures, each 0.01 to 64, not falling."""

    enabled: bool = False
    levels: tuple[float, float, float] = (0.7, 0.8, 0.9)

    def check(self, path: str) -> None:
        low, high = SHED_LEVEL_RANGE
        if list(self.levels) != sorted(self.levels) or any(not low <= v <= high for v in self.levels):
            raise RuleError(
                f"{path}.levels",
                f"must be three rising pressures within [{low}, {high}], got {list(self.levels)}",
            )


@dataclass(frozen=True, kw_only=True)
class ServerRules:
    methods: Mapping[str, ServerMethodRules] = field(default_factory=dict)

    def check(self, path: str) -> None:
        _check_shared(self.methods, ("rate_limit", "bulkhead"), f"{path}.methods")


@dataclass(frozen=True, kw_only=True)
class ClientRules:
    methods: Mapping[str, ClientMethodRules] = field(default_factory=dict)

    def check(self, path: str) -> None:
        _check_shared(self.methods, ("bulkhead",), f"{path}.methods")


def _check_shared(methods: Mapping[str, Any], kinds: tuple[str, ...], path: str) -> None:
    """A rule that names another pattern in ``shared`` joins that pattern's instance only when it
    is the same rule there (an instance is keyed by its rule too): anything else would be two
    counts where one was meant, so it is refused naming the field."""
    for pattern, rules in methods.items():
        for kind in kinds:
            rule = getattr(rules, kind)
            shared = getattr(rule, "shared", "")
            if not shared or shared == pattern:
                continue
            owner = methods.get(shared)
            if owner is None or getattr(owner, kind) != rule:
                raise RuleError(
                    f"{path}[{_show(pattern)}].{kind}.shared",
                    f"names {_show(shared)}, whose {kind} is not this same rule "
                    f"(a shared {kind} must be written on that pattern too, identically)",
                )


@dataclass(frozen=True, kw_only=True)
class GovernanceRules:
    """Everything governance does for one service. ``enabled=False`` turns every mechanism off
    (the panel's master switch) while keeping the rules."""

    enabled: bool = True
    server: ServerRules = field(default_factory=ServerRules)
    client: ClientRules = field(default_factory=ClientRules)
    adaptive: AdaptiveRule = field(default_factory=AdaptiveRule)
    shedding: SheddingRule = field(default_factory=SheddingRule)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GovernanceRules:
        """Parse and validate; :class:`RuleError` names the first bad field. Never raises anything
        else: an unforeseen failure is a RuleError at ``rules`` whose ``__cause__`` is the failure."""
        try:
            return _parse(cls, data, "rules")
        except RuleError:
            raise
        except Exception as exc:  # a bug, or input the checks did not foresee: still a refusal
            raise RuleError("rules", f"could not be validated ({_describe(exc)})") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> GovernanceRules:
        """:meth:`from_dict` of JSON text, bounded by :data:`MAX_JSON_BYTES` and
        :data:`MAX_JSON_DEPTH` before it is parsed."""
        return cls.from_dict(load_json(text, "rules"))

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def most_specific(patterns: Mapping[str, _V], service: str, rpc_method: str) -> tuple[str, _V] | None:
    """The entry for ``rpc_method`` (``pkg.Service/Method``) of ``service``: its exact pattern,
    else ``pkg.Service/*``, else ``*``; None when none is set."""
    for pattern in (rpc_method, f"{service}/*", "*"):
        value = patterns.get(pattern)
        if value is not None:
            return pattern, value
    return None


def governing_entry(methods: Mapping[str, _V], pattern: str) -> _V | None:
    """The entry that governs ``pattern``'s methods: its own, else the most specific broader one
    (``pkg.Service/*``, then ``*``); None when none does."""
    if pattern == "*":
        return methods.get("*")
    found = most_specific(methods, pattern.partition("/")[0], pattern)
    return found[1] if found else None


def _check_codes(codes: tuple[str, ...], path: str) -> None:
    for code in codes:
        if code not in GRPC_CODE_NAMES:
            raise RuleError(path, f"unknown gRPC status code {_show(code)}")
