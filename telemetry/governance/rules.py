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
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

from telemetry.config import ConfigError

_V = TypeVar("_V")

MAX_JSON_BYTES = 256 * 1024
"""Largest JSON text accepted for rules (bytes; characters for a ``str``): real ones take a few KiB."""
MAX_JSON_DEPTH = 32
"""Deepest JSON nesting accepted: a rules document is 6 levels deep, so deeper is refused before the
parser (which recurses once per level) sees it."""

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


class RuleError(ConfigError):
    """A rule is invalid; ``path`` names the field (e.g. ``server.methods['*'].rate_limit.limit``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def _number(
    *, default: Any = dataclasses.MISSING, minimum: float, maximum: float, off: bool = False
) -> Any:
    """A numeric field accepted within ``[minimum, maximum]``, checked at parse time; with ``off``, 0
    is accepted too (it turns the feature off) while the tiny values between stay refused."""
    meta = {"min": minimum, "max": maximum, "off": off}
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

    Ranges: ``limit`` 0.001 to 1e6; ``window`` 0.001 to 86400 s (a daily quota); ``burst`` 1 to 1e6
    calls (None: one second's worth); ``max_wait`` 0 or 0.001 to 60 s; ``warm_up`` 0.001 to 3600 s;
    ``cold_factor`` 1 to 100; ``max_keys`` 1 to 1e6.
    """

    algorithm: Algorithm = "token_bucket"
    limit: float = _number(minimum=LIMIT_MIN, maximum=LIMIT_MAX)
    window: float = _number(default=1.0, minimum=SECONDS_MIN, maximum=DAY)
    burst: int | None = _number(default=None, minimum=1, maximum=COUNT_MAX)
    max_wait: float = _number(default=0.0, minimum=SECONDS_MIN, maximum=60.0, off=True)
    warm_up: float = _number(default=10.0, minimum=SECONDS_MIN, maximum=HOUR)
    cold_factor: float = _number(default=3.0, minimum=1.0, maximum=FACTOR_MAX)
    key: str = ""
    allow: tuple[str, ...] = ()
    max_keys: int = _number(default=10_000, minimum=1, maximum=COUNT_MAX)
    cluster: bool = False

    def check(self, path: str) -> None:
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
    window_size: int = _number(default=20, minimum=1, maximum=10_000)
    minimum_calls: int = _number(default=10, minimum=1, maximum=COUNT_MAX)
    failure_rate_threshold: float = _number(default=0.5, minimum=0.001, maximum=1.0)
    slow_call_rate_threshold: float = _number(default=1.0, minimum=0.001, maximum=1.0)
    slow_call_duration: float = _number(default=1.0, minimum=SECONDS_MIN, maximum=HOUR)
    consecutive_failures: int = _number(default=0, minimum=0, maximum=COUNT_MAX)
    open_wait: float = _number(default=5.0, minimum=SECONDS_MIN, maximum=HOUR)
    # caps the backoff: recovery is part of the design
    max_open_wait: float = _number(default=30.0, minimum=SECONDS_MIN, maximum=HOUR)
    backoff_multiplier: float = _number(default=2.0, minimum=1.0, maximum=FACTOR_MAX)
    half_open_probes: int = _number(default=3, minimum=1, maximum=10_000)
    ramp_steps: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    ramp_step_duration: float = _number(default=2.0, minimum=SECONDS_MIN, maximum=HOUR)
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

    k: float = _number(default=1.5, minimum=1.0, maximum=FACTOR_MAX)
    window: float = _number(default=10.0, minimum=SECONDS_MIN, maximum=HOUR)
    protected: int = _number(default=5, minimum=0, maximum=COUNT_MAX)


@dataclass(frozen=True, kw_only=True)
class BulkheadRule:
    """At most ``max_concurrent`` calls in flight to one downstream (target) for the pattern's scope
    (1 to 1e6)."""

    max_concurrent: int = _number(minimum=1, maximum=COUNT_MAX)


@dataclass(frozen=True, kw_only=True)
class RetryRule:
    """Retries of idempotent methods only, on ``codes`` only, within a budget (``budget_ratio`` of
    calls plus ``budget_min_per_second``), so retries cannot amplify an outage.

    Ranges: ``max_attempts`` 1 to 10 (first attempt included); ``initial_backoff`` and
    ``max_backoff`` 0 or 0.001 to 60 s; ``multiplier`` 1 to 100; ``jitter`` and ``budget_ratio`` 0
    or 0.001 to 1; ``budget_min_per_second`` 0 or 0.001 to 1e6.
    """

    max_attempts: int = _number(default=3, minimum=1, maximum=10)
    initial_backoff: float = _number(default=0.05, minimum=SECONDS_MIN, maximum=60.0, off=True)
    max_backoff: float = _number(default=1.0, minimum=SECONDS_MIN, maximum=60.0, off=True)
    multiplier: float = _number(default=2.0, minimum=1.0, maximum=FACTOR_MAX)
    jitter: float = _number(default=0.2, minimum=0.001, maximum=1.0, off=True)
    codes: tuple[str, ...] = DEFAULT_RETRY_CODES
    budget_ratio: float = _number(default=0.1, minimum=0.001, maximum=1.0, off=True)
    budget_min_per_second: float = _number(default=1.0, minimum=LIMIT_MIN, maximum=LIMIT_MAX, off=True)

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
    cache_size: int = _number(default=1024, minimum=1, maximum=COUNT_MAX)
    cache_ttl: float = _number(default=300.0, minimum=SECONDS_MIN, maximum=DAY)


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
    retries; ``defer`` queues a call that would fail (at most ``defer_max_items``, 1 to 100000) to
    send it when the target recovers, answering the caller with the fallback meanwhile."""

    breaker: BreakerRule | None = None
    throttle: ThrottleRule | None = None
    bulkhead: BulkheadRule | None = None
    retry: RetryRule | None = None
    idempotent: bool = False
    fallback: FallbackRule | None = None
    defer: bool = False
    defer_max_items: int = _number(default=1000, minimum=1, maximum=100_000)

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
    cpu_threshold: float = _number(default=0.8, minimum=0.01, maximum=4.0)
    loop_lag_threshold: float = _number(default=0.05, minimum=SECONDS_MIN, maximum=60.0)
    cool_off: float = _number(default=1.0, minimum=SECONDS_MIN, maximum=HOUR, off=True)
    min_limit: int = _number(default=1, minimum=1, maximum=COUNT_MAX)
    max_limit: int = _number(default=1000, minimum=1, maximum=COUNT_MAX)
    initial_limit: int = _number(default=20, minimum=1, maximum=COUNT_MAX)
    tolerance: float = _number(default=1.5, minimum=1.0, maximum=FACTOR_MAX)
    # The limit shrinks linearly between cpu_threshold and cpu_max (go-zero). One saturated core
    # is 1.0, the normal state of a busy CPU-bound Python process, so the default leaves the BBR
    # bound nearly whole there and shrinks it only when native threads push CPU further.
    cpu_max: float = _number(default=2.0, minimum=0.01, maximum=64.0)
    # A CPU-bound handler holds the GIL for Python's whole switch interval (5 ms) before grpc's
    # poller thread can take a new call, let alone refuse it: ~200 admission decisions a second.
    # While adaptive shedding is on, the process switch interval is set to this (0: leave it).
    # 0.2 ms: with admission in the poller thread (telemetry.rpc.admission), 0.2 ms gave p99s
    # 10-15% lower than 0.5 ms at 2x and 4x overload, same goodput; 2 and 5 ms were far worse
    # (benchmarks/RESULTS.md, overload). 1 us is the finest interval CPython keeps.
    gil_switch_interval: float = _number(default=0.0002, minimum=1e-6, maximum=0.005, off=True)
    # Queue-delay shedding (CoDel, see governance.codel) for sync servers built by Telemetry.server:
    # when even the least-delayed call of an interval waited over queue_target, calls that waited
    # over twice that are refused as they reach a worker. 0 turns it off.
    queue_target: float = _number(default=0.005, minimum=0.0001, maximum=10.0, off=True)
    queue_interval: float = _number(default=0.1, minimum=SECONDS_MIN, maximum=60.0)

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


def validate_pattern(pattern: str, path: str) -> None:
    if not isinstance(pattern, str):
        raise RuleError(path, f"method pattern must be a string, got {_show(pattern)}")
    if pattern == "*":
        return
    service, sep, method = pattern.partition("/")
    bad_wildcard = "*" in service or ("*" in method and method != "*")
    if not sep or not service or not method or "/" in method or bad_wildcard:
        raise RuleError(
            path,
            f"method pattern must be '*', 'pkg.Service/*' or 'pkg.Service/Method', got {_show(pattern)}",
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
            raise RuleError(path, f"unknown gRPC status code {_show(code)}")


# -- bounded JSON ------------------------------------------------------------------------------------

# A JSON string (an unterminated one runs to the end) or a bracket: brackets inside strings do not nest.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def json_text(text: str | bytes, path: str, *, source: str = "") -> str:
    """``text`` as a ``str`` once it is known to be at most :data:`MAX_JSON_BYTES` long and nested
    at most :data:`MAX_JSON_DEPTH` deep (bytes are decoded as ``json.loads`` would); RuleError
    naming ``path`` otherwise. ``source`` (an etcd key, a file) is named in the message."""
    where = f" in {source}" if source else ""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_JSON_BYTES:
            raise RuleError(path, f"too large{where}: {len(text)} bytes, at most {MAX_JSON_BYTES}")
        try:
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        except (UnicodeError, LookupError) as exc:
            raise RuleError(path, f"not valid JSON{where}: {exc}") from None
    elif not isinstance(text, str):
        raise RuleError(path, f"must be JSON text, got {type(text).__name__}")
    elif len(text) > MAX_JSON_BYTES:
        raise RuleError(path, f"too large{where}: {len(text)} characters, at most {MAX_JSON_BYTES}")
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise RuleError(path, f"nesting too deep{where} (more than {MAX_JSON_DEPTH} levels)")
        elif bracket in ("]", "}"):
            depth -= 1
    return text


def load_json(text: str | bytes, path: str, *, source: str = "") -> Any:
    """The value of bounded JSON text (see :func:`json_text`); RuleError naming ``path`` otherwise."""
    checked = json_text(text, path, source=source)
    try:
        return json.loads(checked)
    except ValueError as exc:
        where = f" in {source}" if source else ""
        raise RuleError(path, f"not valid JSON{where}: {exc}") from None
    except RecursionError:  # not with the depth bound above; kept so the contract cannot break
        raise RuleError(path, "nesting too deep") from None


# -- generic parsing and dumping of the dataclasses above ------------------------------------------

_T = TypeVar("_T")


def _parse(cls: type[_T], data: Any, path: str) -> _T:
    if not isinstance(data, Mapping):
        raise RuleError(path, f"must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if not isinstance(name, str):  # JSON keys always are; YAML or code may give others
            raise RuleError(path, f"field names must be strings, got {_show(name)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RuleError(
            f"{path}.{_key(unknown[0])}", f"unknown field (known: {', '.join(sorted(fields))})"
        )
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
    """``value`` as a float; RuleError naming ``path`` unless it is a finite int or float (booleans
    are not numbers here, nor integers beyond the float range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(path, f"must be a finite number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int past 1.8e308
        number = math.inf
    if not math.isfinite(number):
        raise RuleError(path, f"must be a finite number, got {_show(value)}")
    return number


def number_in_range(
    value: Any, path: str, minimum: float, maximum: float, *, off: bool = False
) -> float:
    """``value`` as a float within ``[minimum, maximum]`` (or 0 with ``off``); RuleError naming
    ``path`` otherwise. The check every numeric rule field gets, for numbers parsed elsewhere."""
    number = finite_number(value, path)
    _in_range(number, path, minimum, maximum, off)
    return number


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return None if value is None else _convert(options[0], value, path)
    if origin is Literal:
        if not isinstance(value, str) or value not in get_args(hint):
            raise RuleError(path, f"must be one of {list(get_args(hint))}, got {_show(value)}")
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
            item_path = f"{path}[{_show(key)}]"
            validate_pattern(key, item_path)
            parsed[str(key)] = _convert(item_type, item, item_path)  # str(): a plain str, not a subclass
        return types.MappingProxyType(parsed)
    if dataclasses.is_dataclass(hint):
        return _parse(hint, value, path)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise RuleError(path, f"must be true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError(path, f"must be an integer, got {_show(value)}")
        return int(value)  # an int subclass (IntEnum ...) would not round-trip
    if hint is float:
        return finite_number(value, path)
    if hint is str:
        if not isinstance(value, str):
            raise RuleError(path, f"must be a string, got {_show(value)}")
        return str(value)
    raise TypeError(f"rules model has an unsupported type at {path}: {hint!r}")  # a bug here


def _check_range(spec: dataclasses.Field[Any], value: Any, path: str) -> None:
    meta = spec.metadata
    if meta and value is not None:  # None: an optional field left unset
        _in_range(value, path, meta["min"], meta["max"], meta["off"])


def _in_range(value: float, path: str, low: float, high: float, off: bool) -> None:
    if off and value == 0:
        return
    if value < low:
        if off:
            need = f"0 (off) or >= {_bound(low)}" if value > 0 else ">= 0"
        elif value <= 0 < low < 1:  # the floor only keeps tiny values out: say "positive" first
            need = f"> 0 (at least {_bound(low)})"
        else:
            need = f">= {_bound(low)}"
        raise RuleError(path, f"must be {need}, got {_show(value)}")
    if value > high:
        raise RuleError(path, f"must be <= {_bound(high)}, got {_show(value)}")


def _bound(number: float) -> str:
    """A range bound as written in the docs: ``0.001``, ``60.0``, ``1000000`` (an int), ``1e6``."""
    if isinstance(number, float) and number >= 1e5 and number.is_integer():
        return re.sub(r"e\+?0*", "e", f"{number:g}")
    return repr(number)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 40
_REPR.maxlevel = 3


def _show(value: Any) -> str:
    """``repr(value)`` shortened: a message must stay small whatever the input (a 100 KB string, a
    100,000-deep list)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a failing repr (an int past Python's digit limit) must not crash a refusal
        return f"<{type(value).__name__}>"


def _key(name: str) -> str:
    """A field name as a path segment: as it is when short, else shortened."""
    return name if len(name) <= 60 and name.isprintable() else _show(name)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def _dump(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    return value
