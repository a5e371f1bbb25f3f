"""Property: whatever reaches the rule parsers, the answer is a RuleError with a message naming a
path, or rules that apply and round-trip. Never any other exception, and never the last-resort
guard (a RuleError chained to an unforeseen exception), which would mean a check is missing.

Inputs: random JSON values; the real schema (derived from the rule dataclasses) with every field
either omitted, in range, at or just past a bound, hostile (sub-normal, huge, NaN, infinities,
integers past the float range, booleans, strings where numbers go) or random JSON, deep nesting
included; a complete valid document with one to three of its fields replaced by such values (so
every field is reached with the fields before it valid), and, for from_dict, by values only code
can build (5,000-deep lists, 5,000-character strings, integers past Python's digit limit, keys that
are not strings); random text and bytes. The live-rules path gets the same, section by section,
through the update LiveRules runs on every etcd change, and must always write a status.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from helpers import FakeEtcd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.control.live_rules import LiveRules, status_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import rules as model
from telemetry.governance.engine import Governance
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.rules import GovernanceRules, RuleError
from telemetry.rpc.call import MethodInfo, RpcKind, Side
from telemetry.testing import FakeClock

# Bounded: a few seconds for the whole module; no example database written into the work tree.
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RULE_CLASSES = [c for c in vars(model).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
FIELD_NAMES = sorted({f.name for c in RULE_CLASSES for f in dataclasses.fields(c)})
PATTERNS = ["*", "pkg.Svc/*", "pkg.Svc/M", "pkg.Svc/", "*/M", "a/b/c", ""]
WORDS = ["", "peer", "metadata:user", "baggage:", "header:x", "UNAVAILABLE", "OK", "token_bucket",
         "warm_up", "last_good", "default", "limit", "open", "time", "critical", "nope"]  # fmt: skip
HOSTILE_NUMBERS: list[Any] = [
    0, -0.0, -1, 1e-310, 5e-324, -1e-310, 1e308, -1e308, 10**400, -(10**400), 2**63, math.nan,
    math.inf, -math.inf, True, False, "1", "1e-310", None,
]  # fmt: skip


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(HOSTILE_NUMBERS),
    st.sampled_from(WORDS + PATTERNS),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(FIELD_NAMES + PATTERNS)), children, max_size=4
        ),
    ),
    max_leaves=12,
)
junk = st.one_of(json_values, st.integers(20, 40).map(nested))  # deep: around the 32-level bound


def numbers(spec: dataclasses.Field[Any], integer: bool) -> st.SearchStrategy[Any]:
    """In range, at and just past the bounds, anywhere, and hostile."""
    meta = spec.metadata
    low, high = meta["min"], meta["max"]
    if integer:
        near = [low, high, low - 1, high + 1, 0]
        good: st.SearchStrategy[Any] = st.integers(low, high)
    else:
        near = [low, high, low / 2, high * 1.001, 0.0, -0.0, math.nextafter(low, 0)]
        good = st.floats(low, high)
    return st.one_of(
        good, st.sampled_from(near), st.integers(), st.floats(), st.sampled_from(HOSTILE_NUMBERS)
    )


def value_for(hint: Any, spec: dataclasses.Field[Any] | None) -> st.SearchStrategy[Any]:
    good = generic_value(hint, spec) if typing.get_origin(hint) else plain_value(hint, spec)
    return st.one_of(good, good, good, junk)  # mostly shaped, sometimes anything


def generic_value(hint: Any, spec: dataclasses.Field[Any] | None) -> st.SearchStrategy[Any]:
    """Values of ``Optional``, ``Literal``, ``tuple`` and ``Mapping`` hints."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return st.one_of(st.none(), value_for(inner, spec))
    if origin is Literal:
        return st.sampled_from(args)
    if origin is tuple:
        item = value_for(args[0], None)
        good = (
            st.lists(item, max_size=4)
            if args[-1] is Ellipsis
            else st.lists(item, min_size=2, max_size=4)
        )
        if args[0] is float:  # ramp steps, shedding levels: rising fractions, often valid
            good = st.one_of(
                good, st.lists(st.floats(0.0005, 1.0), max_size=5).map(lambda v: [*sorted(v), 1.0])
            )
        return good
    if origin is Mapping:
        rule = schema(args[1])
        return st.dictionaries(
            st.one_of(st.sampled_from(PATTERNS), st.text(max_size=6)), rule, max_size=3
        )
    raise AssertionError(f"no strategy for {hint!r}")


def plain_value(hint: Any, spec: dataclasses.Field[Any] | None) -> st.SearchStrategy[Any]:
    """Values of rule classes, booleans, numbers (ranged by the field's metadata) and strings."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return schema(hint)
    if hint is bool:
        return st.booleans()
    if hint in (int, float) and spec is not None and spec.metadata:
        return numbers(spec, integer=hint is int)
    if hint is float:
        return st.one_of(st.floats(0.0005, 1.0), st.floats(), st.sampled_from(HOSTILE_NUMBERS))
    if hint is str:
        return st.one_of(st.sampled_from(WORDS), st.text(max_size=8))
    raise AssertionError(f"no strategy for {hint!r}")


_SCHEMAS: dict[type, st.SearchStrategy[dict[str, Any]]] = {}


def schema(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """Documents of ``cls``'s shape: each field omitted or given a value from :func:`value_for`."""
    if cls not in _SCHEMAS:
        hints = typing.get_type_hints(cls)
        fields = {f.name: value_for(hints[f.name], f) for f in dataclasses.fields(cls)}
        _SCHEMAS[cls] = st.fixed_dictionaries({}, optional=fields)
    return _SCHEMAS[cls]


# Every rule class present, every field set: a complete valid document to spoil field by field.
BASELINE = GovernanceRules(
    server=model.ServerRules(
        methods={
            "*": model.ServerMethodRules(
                brownout=model.BrownoutRule(share=0.5),
                rate_limit=model.RateLimitRule(limit=10, burst=5, key="peer"),
                fallback=model.FallbackRule(mode="last_good"),
            )
        }
    ),
    client=model.ClientRules(
        methods={
            "pkg.Svc/*": model.ClientMethodRules(
                breaker=model.BreakerRule(),
                throttle=model.ThrottleRule(),
                bulkhead=model.BulkheadRule(max_concurrent=4, shared="pkg.Svc/*"),
                retry=model.RetryRule(),
                idempotent=True,
                fallback=model.FallbackRule(),
                defer=True,
            )
        }
    ),
    adaptive=model.AdaptiveRule(enabled=True),
    shedding=model.SheddingRule(enabled=True),
).to_dict()


def nodes(value: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of every value inside ``value``: fields, rule objects, pattern maps."""
    if not isinstance(value, dict):
        return [path]
    return [path] * bool(path) + [p for key, item in value.items() for p in nodes(item, (*path, key))]


NODES = nodes(BASELINE)
# Values only code (or YAML) can build: JSON cannot carry them.
FROM_CODE: list[Any] = [
    nested(5000),
    "x" * 5000,
    10**5000,
    {1: 2, "a": 3},
    {(1,): 1},
    (1.0, 2.0),
    b"bytes",
    {"*"},
    object(),
]


def spoiled(values: st.SearchStrategy[Any], section: str = "") -> st.SearchStrategy[dict[str, Any]]:
    """:data:`BASELINE` (or one ``section`` of it) with one to three values replaced by ``values``."""
    base = BASELINE[section] if section else BASELINE

    def spoil(changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
        doc = copy.deepcopy(base)
        for path, value in changes:
            parent: Any = doc
            for key in path[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if isinstance(parent, dict):  # not under a value replaced before
                parent[path[-1]] = value
        return doc

    return st.lists(st.tuples(st.sampled_from(nodes(base)), values), min_size=1, max_size=3).map(spoil)


replacements = st.one_of(
    st.sampled_from(HOSTILE_NUMBERS),
    st.floats(),
    st.integers(),
    scalars,
    junk,
    st.sampled_from(FIELD_NAMES),
)
json_documents = st.one_of(schema(GovernanceRules), spoiled(replacements), json_values)
documents = st.one_of(json_documents, spoiled(st.one_of(replacements, st.sampled_from(FROM_CODE))))
Outcome = tuple[str, str]  # ("refused", path) or ("valid", the rules as JSON)


def outcome(parse: Callable[[], GovernanceRules]) -> Outcome:
    """Run ``parse``; check the property; say what happened."""
    try:
        rules = parse()
    except RuleError as exc:
        message = str(exc)
        assert exc.path and message.startswith(f"{exc.path}: ") and len(message) > len(exc.path) + 2
        assert len(message) < 2000, message[:300]
        assert exc.__cause__ is None, f"the last-resort guard fired: {message}"
        return "refused", exc.path
    assert isinstance(rules, GovernanceRules)
    assert GovernanceRules.from_dict(rules.to_dict()) == rules
    assert GovernanceRules.from_json(rules.to_json()) == rules
    mechanisms_work(rules)
    return "valid", rules.to_json()


SERVER_INFO = MethodInfo("/pkg.Svc/M", RpcKind.UNARY, Side.SERVER)
CLIENT_INFO = MethodInfo("/pkg.Svc/M", RpcKind.UNARY, Side.CLIENT)


def mechanisms_work(rules: GovernanceRules) -> None:
    """Accepted rules build their mechanisms (the model refuses first what a mechanism would), and
    a rate limiter built from them admits a first call and gives a finite hint."""
    gov = Governance(clock=FakeClock(), cpu=lambda: 0.1)
    try:
        gov.apply(rules)
        snapshot = gov.snapshot()
        gov.client_plan(snapshot, CLIENT_INFO, "target")  # breaker, throttle, bulkhead, retry ...
        plan = gov.server_plan(snapshot, SERVER_INFO)
        limiter = None if plan is None else plan.instance("rate_limit")
        if isinstance(limiter, KeyedLimiter):
            assert limiter.try_acquire("key") or "key" in limiter.allow
            wait = limiter.retry_after("key")
        elif limiter is not None:
            assert limiter.try_acquire()
            wait = limiter.retry_after()
        else:
            return
        assert math.isfinite(wait) and wait >= 0
    finally:
        Governance(GovernanceRules())  # puts back a GIL switch interval adaptive rules may have set


@SETTINGS
@given(doc=documents)
def test_from_dict_refuses_or_round_trips(doc: Any) -> None:
    outcome(lambda: GovernanceRules.from_dict(doc))


def test_the_baseline_is_valid_and_complete() -> None:
    assert GovernanceRules.from_dict(BASELINE).to_dict() == BASELINE
    assert set(FIELD_NAMES) <= {path[-1] for path in NODES}  # every field can be spoiled


@SETTINGS
@given(doc=spoiled(st.sampled_from(FROM_CODE)))
def test_values_only_code_can_build_are_refused_cleanly(doc: dict[str, Any]) -> None:
    # Every other field is valid: the refusal is about the value placed, whatever its kind.
    assert outcome(lambda: GovernanceRules.from_dict(doc))[0] == "refused"


@SETTINGS
@given(doc=spoiled(st.sampled_from(HOSTILE_NUMBERS)))
def test_hostile_numbers_anywhere_are_refused_or_valid(doc: dict[str, Any]) -> None:
    # Every other field is valid; JSON can carry them all (NaN and Infinity as Python writes them).
    result = outcome(lambda: GovernanceRules.from_dict(doc))
    assert outcome(lambda: GovernanceRules.from_json(json.dumps(doc))) == result


@SETTINGS
@given(doc=json_documents)
def test_from_json_agrees_with_from_dict(doc: Any) -> None:
    text = json.dumps(doc)  # NaN and Infinity are written, and read back, as Python's json does
    via_dict = outcome(lambda: GovernanceRules.from_dict(doc))
    via_json = outcome(lambda: GovernanceRules.from_json(text))
    if via_dict[0] == "valid" or text.count("[") + text.count("{") <= model.MAX_JSON_DEPTH:
        assert via_json == via_dict
    else:  # deeper than the JSON bound (junk somewhere): refused either way, maybe for the depth
        assert via_json[0] == "refused"


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=60), st.binary(max_size=60), st.integers(1, 200).map(lambda n: "[" * n)
    )
)
def test_random_text_is_refused_or_valid(text: str | bytes) -> None:
    outcome(lambda: GovernanceRules.from_json(text))


# -- the live-rules section parser ----------------------------------------------------------------


SECTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "rules": st.one_of(schema(GovernanceRules), spoiled(replacements)),
    "enabled": st.one_of(st.booleans(), junk),
    "server": st.one_of(schema(model.ServerRules), spoiled(replacements, "server")),
    "client": st.one_of(schema(model.ClientRules), spoiled(replacements, "client")),
    "adaptive": st.one_of(schema(model.AdaptiveRule), spoiled(replacements, "adaptive")),
    "shedding": st.one_of(schema(model.SheddingRule), spoiled(replacements, "shedding")),
    "cluster": st.one_of(
        st.dictionaries(
            st.sampled_from(PATTERNS),
            st.one_of(st.floats(), st.integers(), st.sampled_from(HOSTILE_NUMBERS), junk),
            max_size=3,
        ),
        junk,
    ),
}


@st.composite
def section_writes(draw: st.DrawFn) -> tuple[str, bytes]:
    section = draw(st.sampled_from(sorted(SECTION_VALUES)))
    value = draw(SECTION_VALUES[section])
    raw = draw(
        st.one_of(
            st.just(json.dumps(value).encode()),
            st.just(json.dumps(value).encode()),
            st.binary(max_size=40),
            st.text(max_size=40).map(str.encode),
            st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
        )
    )
    return section, raw


@SETTINGS
@given(writes=st.lists(section_writes(), min_size=1, max_size=3), count=st.integers(1, 50))
def test_live_sections_are_applied_or_rejected_never_unanswered(
    writes: list[tuple[str, bytes]], count: int
) -> None:
    etcd = FakeEtcd()
    gov = Governance(clock=FakeClock(), cpu=lambda: 0.1)
    live = LiveRules(cast(EtcdClient, etcd), gov, service="svc", instance_id="a")
    state: dict[str, bytes] = {}
    try:
        for revision, (section, raw) in enumerate(writes, start=1):
            before, generation = gov.rules, gov.generation
            state[f"/governance/svc/{section}"] = raw
            live._update(dict(state), revision, count, forced=True)  # what each etcd change runs
            status = json.loads(etcd.values[status_key("svc", "a")])
            assert status["revision"] == revision
            if status["state"] == "rejected":
                assert isinstance(status["error"], str) and status["error"]
                assert "could not be" not in status["error"]  # no unforeseen failure, named or not
                assert len(status["error"]) <= 2000
                assert gov.rules is before and gov.generation == generation  # the rules stay
                del state[f"/governance/svc/{section}"]  # as the panel would: undo the bad write
            else:
                assert status["state"] == "applied" and status["error"] is None
                outcome(lambda: GovernanceRules.from_dict(gov.rules.to_dict()))
    finally:
        Governance(GovernanceRules())  # puts back a GIL switch interval adaptive rules may have set
