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
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

from telemetry.config import ConfigError

_V = TypeVar("_V")


class RuleError(ConfigError):
    """A rule is invalid; ``path`` names the field (e.g. ``server.methods['*'].rate_limit.limit``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _positive(
    *,
    default: Any = dataclasses.MISSING,
    minimum: float = 0.0,
    inclusive: bool = False,
    maximum: float | None = None,
) -> Any:
    """A numeric field with a range checked at parse time."""
    meta = {"min": minimum, "min_inclusive": inclusive, "max": maximum}
    return field(default=default, metadata=meta)


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
    split across the live instances (the discovery layer tells how many).
    """

    algorithm: Algorithm = "token_bucket"
    limit: float = _positive()
    window: float = _positive(default=1.0)
    burst: int | None = None
    max_wait: float = _positive(default=0.0, inclusive=True, maximum=60.0)
    warm_up: float = _positive(default=10.0)
    cold_factor: float = _positive(default=3.0, minimum=1.0, inclusive=True)
    key: str = ""
    allow: tuple[str, ...] = ()
    max_keys: int = _positive(default=10_000)
    cluster: bool = False

    def check(self, path: str) -> None:
        source, _, name = self.key.partition(":")
        if self.key and not (self.key == "peer" or (source in ("metadata", "baggage") and name)):
            raise RuleError(
                f"{path}.key",
                f"must be '', 'peer', 'metadata:<name>' or 'baggage:<name>', got {self.key!r}",
            )
        if self.burst is not None and self.burst < 1:
            raise RuleError(f"{path}.burst", f"must be >= 1, got {self.burst}")


@dataclass(frozen=True, kw_only=True)
class BreakerRule:
    """Client-side circuit breaker, one per target and method (resilience4j semantics plus a
    gradual recovery ramp). ``force``: ``"open"`` / ``"closed"`` pin the state by hand."""

    window_type: Literal["count", "time"] = "count"
    window_size: int = _positive(default=20)
    minimum_calls: int = _positive(default=10)
    failure_rate_threshold: float = _positive(default=0.5, maximum=1.0)
    slow_call_rate_threshold: float = _positive(default=1.0, maximum=1.0)
    slow_call_duration: float = _positive(default=1.0)
    consecutive_failures: int = _positive(default=0, inclusive=True)
    open_wait: float = _positive(default=5.0)
    max_open_wait: float = _positive(default=30.0)  # caps the backoff: recovery is part of the design
    backoff_multiplier: float = _positive(default=2.0, minimum=1.0, inclusive=True)
    half_open_probes: int = _positive(default=3)
    ramp_steps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    ramp_step_duration: float = _positive(default=2.0)
    failure_codes: tuple[str, ...] = DEFAULT_FAILURE_CODES
    force: Literal["", "open", "closed"] = ""

    def check(self, path: str) -> None:
        _check_codes(self.failure_codes, f"{path}.failure_codes")
        steps = self.ramp_steps
        if (
            not steps
            or any(not 0 < s <= 1 for s in steps)
            or any(a >= b for a, b in itertools.pairwise(steps))
            or steps[-1] != 1
        ):
            raise RuleError(
                f"{path}.ramp_steps",
                f"must rise strictly within (0, 1] and end at 1.0, got {list(steps)}",
            )
        if self.max_open_wait < self.open_wait:
            raise RuleError(f"{path}.max_open_wait", "must be >= open_wait")


@dataclass(frozen=True, kw_only=True)
class ThrottleRule:
    """Client-side adaptive throttling (Google SRE), one per target."""

    k: float = _positive(default=1.5, minimum=1.0, inclusive=True)
    window: float = _positive(default=10.0)
    protected: int = _positive(default=5, inclusive=True)


@dataclass(frozen=True, kw_only=True)
class BulkheadRule:
    """At most ``max_concurrent`` calls in flight to one downstream (target) for the pattern's scope."""

    max_concurrent: int = _positive()


@dataclass(frozen=True, kw_only=True)
class RetryRule:
    """Retries of idempotent methods only, on ``codes`` only, within a budget (``budget_ratio`` of
    calls plus ``budget_min_per_second``), so retries cannot amplify an outage."""

    max_attempts: int = _positive(default=3, minimum=1, inclusive=True)
    initial_backoff: float = _positive(default=0.05, inclusive=True)
    max_backoff: float = _positive(default=1.0, inclusive=True)
    multiplier: float = _positive(default=2.0, minimum=1.0, inclusive=True)
    jitter: float = _positive(default=0.2, inclusive=True, maximum=1.0)
    codes: tuple[str, ...] = DEFAULT_RETRY_CODES
    budget_ratio: float = _positive(default=0.1, inclusive=True, maximum=1.0)
    budget_min_per_second: float = _positive(default=1.0, inclusive=True)

    def check(self, path: str) -> None:
        _check_codes(self.codes, f"{path}.codes")
        if self.initial_backoff > self.max_backoff:
            raise RuleError(f"{path}.initial_backoff", "must be <= max_backoff")


@dataclass(frozen=True, kw_only=True)
class FallbackRule:
    """What to answer instead of failing: a ``default`` value or ``fast_path`` function registered in
    code (:meth:`Governance.register_fallback`), or the ``last_good`` response cached for the same
    request. ``on``: when to use it (breaker open, call limited, downstream failed)."""

    mode: FallbackMode = "default"
    on: tuple[FallbackTrigger, ...] = ("breaker", "limit", "failure")
    cache_size: int = _positive(default=1024)
    cache_ttl: float = _positive(default=300.0)


@dataclass(frozen=True, kw_only=True)
class ServerMethodRules:
    """Server-side rules for the methods a pattern matches. ``priority`` and ``write`` drive
    priority shedding (non-core writes go first); ``fallback`` answers limited calls."""

    rate_limit: RateLimitRule | None = None
    priority: PriorityName = "normal"
    write: bool = False
    fallback: FallbackRule | None = None


@dataclass(frozen=True, kw_only=True)
class ClientMethodRules:
    """Client-side rules for the methods a pattern matches (per target). ``idempotent`` allows
    retries; ``defer`` queues a call that would fail (at most ``defer_max_items``) to send it when
    the target recovers, answering the caller with the fallback meanwhile."""

    breaker: BreakerRule | None = None
    throttle: ThrottleRule | None = None
    bulkhead: BulkheadRule | None = None
    retry: RetryRule | None = None
    idempotent: bool = False
    fallback: FallbackRule | None = None
    defer: bool = False
    defer_max_items: int = _positive(default=1000)

    def check(self, path: str) -> None:
        if self.defer and (self.fallback is None or self.fallback.mode == "last_good"):
            raise RuleError(
                f"{path}.defer",
                "needs a fallback with mode 'default' or 'fast_path' to answer the caller while queued",
            )


@dataclass(frozen=True, kw_only=True)
class AdaptiveRule:
    """Server-side adaptive shedding from live CPU (fraction of one core), event-loop lag and
    latency (BBR plus a Gradient2 limit)."""

    enabled: bool = False
    cpu_threshold: float = _positive(default=0.8, maximum=4.0)
    loop_lag_threshold: float = _positive(default=0.05)
    cool_off: float = _positive(default=1.0, inclusive=True)
    min_limit: int = _positive(default=1)
    max_limit: int = _positive(default=1000)
    initial_limit: int = _positive(default=20)
    tolerance: float = _positive(default=1.5, minimum=1.0, inclusive=True)
    # The limit shrinks linearly between cpu_threshold and cpu_max (go-zero). One saturated core
    # is 1.0, the normal state of a busy CPU-bound Python process, so the default leaves the BBR
    # bound nearly whole there and shrinks it only when native threads push CPU further.
    cpu_max: float = _positive(default=2.0, maximum=64.0)
    # A CPU-bound handler holds the GIL for Python's whole switch interval (5 ms) before grpc's
    # poller thread can take a new call, let alone refuse it: ~200 admission decisions a second.
    # While adaptive shedding is on, the process switch interval is set to this (0: leave it).
    # 0.2 ms: with admission in the poller thread (telemetry.rpc.admission), 0.2 ms gave p99s
    # 10-15% lower than 0.5 ms at 2x and 4x overload, same goodput; 2 and 5 ms were far worse
    # (benchmarks/RESULTS.md, overload).
    gil_switch_interval: float = _positive(default=0.0002, inclusive=True, maximum=0.005)
    # Queue-delay shedding (CoDel, see governance.codel) for sync servers built by Telemetry.server:
    # when even the least-delayed call of an interval waited over queue_target, calls that waited
    # over twice that are refused as they reach a worker. 0 turns it off.
    queue_target: float = _positive(default=0.005, inclusive=True, maximum=10.0)
    queue_interval: float = _positive(default=0.1, maximum=60.0)

    def check(self, path: str) -> None:
        if self.cpu_max <= self.cpu_threshold:
            raise RuleError(f"{path}.cpu_max", "must be > cpu_threshold")
        if self.min_limit > self.max_limit:
            raise RuleError(f"{path}.min_limit", "must be <= max_limit")
        if not self.min_limit <= self.initial_limit <= self.max_limit:
            raise RuleError(f"{path}.initial_limit", "must be between min_limit and max_limit")
        if self.queue_target >= self.queue_interval:
            raise RuleError(f"{path}.queue_interval", "must be > queue_target")


@dataclass(frozen=True, kw_only=True)
class SheddingRule:
    """Priority shedding: at these CPU pressures turn off low-priority work, writes first."""

    enabled: bool = False
    levels: tuple[float, float, float] = (0.7, 0.8, 0.9)

    def check(self, path: str) -> None:
        if list(self.levels) != sorted(self.levels) or any(v <= 0 for v in self.levels):
            raise RuleError(
                f"{path}.levels", f"must be three rising pressures > 0, got {list(self.levels)}"
            )


@dataclass(frozen=True, kw_only=True)
class ServerRules:
    methods: Mapping[str, ServerMethodRules] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ClientRules:
    methods: Mapping[str, ClientMethodRules] = field(default_factory=dict)


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
        """Parse and validate; :class:`RuleError` names the first bad field."""
        return _parse(cls, data, "rules")

    @classmethod
    def from_json(cls, text: str | bytes) -> GovernanceRules:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RuleError("rules", f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return _dump(self)  # type: ignore[no-any-return]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def validate_pattern(pattern: str, path: str) -> None:
    if pattern == "*":
        return
    service, sep, method = pattern.partition("/")
    bad_wildcard = "*" in service or ("*" in method and method != "*")
    if not sep or not service or not method or "/" in method or bad_wildcard:
        raise RuleError(
            path, f"method pattern must be '*', 'pkg.Service/*' or 'pkg.Service/Method', got {pattern!r}"
        )


def most_specific(patterns: Mapping[str, _V], service: str, rpc_method: str) -> tuple[str, _V] | None:
    """The entry for ``rpc_method`` (``pkg.Service/Method``) of ``service``: its exact pattern,
    else ``pkg.Service/*``, else ``*``; None when none is set."""
    for pattern in (rpc_method, f"{service}/*", "*"):
        value = patterns.get(pattern)
        if value is not None:
            return pattern, value
    return None


def _check_codes(codes: tuple[str, ...], path: str) -> None:
    for code in codes:
        if code not in GRPC_CODE_NAMES:
            raise RuleError(path, f"unknown gRPC status code {code!r}")


# -- generic parsing and dumping of the dataclasses above ------------------------------------------

_T = TypeVar("_T")


def _parse(cls: type[_T], data: Any, path: str) -> _T:
    if not isinstance(data, Mapping):
        raise RuleError(path, f"must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RuleError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(fields))})")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        field_path = f"{path}.{name}"
        if name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise RuleError(field_path, "is required")
            continue
        value = _convert(hints[name], data[name], field_path)
        _check_range(spec, value, field_path)
        values[name] = value
    rule = cls(**values)
    check = getattr(rule, "check", None)
    if check is not None:
        check(path)
    return rule


def finite_number(value: Any, path: str) -> float:
    """``value`` as a float; RuleError naming ``path`` unless it is a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(path, f"must be a finite number, got {value!r}")
    return float(value)


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return None if value is None else _convert(options[0], value, path)
    if origin is Literal:
        if value not in get_args(hint):
            raise RuleError(path, f"must be one of {list(get_args(hint))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RuleError(path, f"must be a list, got {type(value).__name__}")
        args = get_args(hint)
        item_types = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            raise RuleError(path, f"must have {len(item_types)} items, got {len(value)}")
        return tuple(
            _convert(t, v, f"{path}[{i}]")
            for i, (t, v) in enumerate(zip(item_types, value, strict=True))
        )
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise RuleError(path, f"must be an object, got {type(value).__name__}")
        item_type = get_args(hint)[1]
        parsed = {}
        for key, item in value.items():
            item_path = f"{path}[{key!r}]"
            validate_pattern(str(key), item_path)
            parsed[str(key)] = _convert(item_type, item, item_path)
        return types.MappingProxyType(parsed)
    if dataclasses.is_dataclass(hint):
        return _parse(hint, value, path)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise RuleError(path, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError(path, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        return finite_number(value, path)
    if hint is str:
        if not isinstance(value, str):
            raise RuleError(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"rules model has an unsupported type at {path}: {hint!r}")  # a bug here


def _check_range(spec: dataclasses.Field[Any], value: Any, path: str) -> None:
    meta = spec.metadata
    if not meta or not isinstance(value, int | float):
        return
    low, inclusive, high = meta["min"], meta["min_inclusive"], meta["max"]
    if value < low or (value == low and not inclusive):
        raise RuleError(path, f"must be {'>=' if inclusive else '>'} {low}, got {value}")
    if high is not None and value > high:
        raise RuleError(path, f"must be <= {high}, got {value}")


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    return value
