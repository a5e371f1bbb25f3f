"""Fallback plans: registered defaults and fast paths, the last-good cache (keyed by the
deterministically serialized request, per method and per target, with a TTL), the triggers, and
request_key.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from engine.support import client_rules, cplan, fallback_of, server_rules
from telemetry.governance.engine import Governance
from telemetry.governance.fallback import request_key
from telemetry.governance.rules import GovernanceRules
from telemetry.testing import FakeClock


class Request:
    """A minimal protobuf-like request: keyed by its serialized bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.deterministic: list[bool] = []

    def SerializeToString(self, *, deterministic: bool = False) -> bytes:  # noqa: N802 - protobuf API
        self.deterministic.append(deterministic)
        return self.payload


# -- fallbacks -------------------------------------------------------------------------------------


def fallback_rules(mode: str, **extra: Any) -> dict[str, Any]:
    return server_rules({"pkg.Svc/*": {"fallback": {"mode": mode, **extra}}})


def test_register_fallback_needs_a_value(gov: Governance) -> None:
    with pytest.raises(ValueError, match="default= or fast_path="):
        gov.register_fallback("pkg.Svc/M")


def test_default_fallback(gov: Governance) -> None:
    gov.register_fallback("/pkg.Svc/M", default="D")  # the leading slash is optional
    gov.apply(fallback_rules("default"))
    assert fallback_of(gov).answer("any request") == (True, "D")
    assert fallback_of(gov, "/pkg.Svc/N").answer("any request") == (False, None)  # none registered


def test_fast_path_fallback(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", fast_path=lambda request: ("fast", request))
    gov.apply(fallback_rules("fast_path"))
    assert fallback_of(gov).answer("r") == (True, ("fast", "r"))


def test_fast_path_mode_falls_back_to_the_default(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", default="D")
    gov.apply(fallback_rules("fast_path"))
    assert fallback_of(gov).answer("r") == (True, "D")


def test_default_mode_does_not_call_the_fast_path(gov: Governance) -> None:
    calls: list[Any] = []
    gov.register_fallback("pkg.Svc/M", fast_path=calls.append)
    gov.apply(fallback_rules("default"))
    assert fallback_of(gov).answer("r") == (False, None)
    assert calls == []


def test_register_fallback_takes_effect_for_plans_resolved_afterwards(gov: Governance) -> None:
    gov.apply(fallback_rules("default"))
    before = fallback_of(gov)
    assert before.answer("r") == (False, None)
    generation = gov.generation
    gov.register_fallback("pkg.Svc/M", default="D")
    assert gov.generation == generation  # counts rule sets applied; plans still re-resolve
    assert gov.rules == GovernanceRules.from_dict(fallback_rules("default"))
    assert fallback_of(gov).answer("r") == (True, "D")


def test_last_good_fallback(gov: Governance, clock: FakeClock) -> None:
    gov.apply(fallback_rules("last_good", cache_ttl=10))
    fallback = fallback_of(gov)
    assert fallback.answer("r") == (False, None)  # nothing remembered, nothing registered
    fallback.remember("r", "resp")
    assert fallback.answer("r") == (True, "resp")
    assert fallback.answer("other") == (False, None)
    fallback.remember("r2", None)  # None is never cached
    assert fallback.answer("r2") == (False, None)
    clock.advance(10)
    assert fallback.answer("r") == (False, None)  # expired


def test_last_good_is_keyed_by_the_serialized_request(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    first = Request(b"same")
    fallback.remember(first, "resp")
    twin = Request(b"same")
    assert fallback.answer(twin) == (True, "resp")
    assert first.deterministic == [True]
    assert twin.deterministic == [True]
    assert fallback.answer(Request(b"different")) == (False, None)


def test_last_good_with_protobuf_messages(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    request = struct_pb2.Value(string_value="q")
    fallback.remember(request, struct_pb2.Value(number_value=42))
    assert fallback.answer(struct_pb2.Value(string_value="q")) == (
        True,
        struct_pb2.Value(number_value=42),
    )
    assert fallback.answer(struct_pb2.Value(string_value="other")) == (False, None)


def test_last_good_miss_uses_the_registered_default(gov: Governance) -> None:
    gov.register_fallback("pkg.Svc/M", default="D")
    gov.apply(fallback_rules("last_good"))
    fallback = fallback_of(gov)
    assert fallback.answer("r") == (True, "D")
    fallback.remember("r", "resp")
    assert fallback.answer("r") == (True, "resp")


def test_last_good_caches_are_per_method(gov: Governance) -> None:
    gov.apply(fallback_rules("last_good"))
    fallback_of(gov, "/pkg.Svc/M").remember("r", "resp")
    assert fallback_of(gov, "/pkg.Svc/N").answer("r") == (False, None)


def test_client_last_good_caches_are_per_target(gov: Governance) -> None:
    gov.apply(client_rules({"*": {"fallback": {"mode": "last_good"}}}))
    a, b = cplan(gov, target="a:1").fallback, cplan(gov, target="b:1").fallback
    assert a is not None
    assert b is not None
    a.remember("r", "resp")
    assert a.answer("r") == (True, "resp")
    assert b.answer("r") == (False, None)


def test_fallback_triggers(gov: Governance) -> None:
    gov.apply(fallback_rules("default", on=["limit"]))
    fallback = fallback_of(gov)
    assert (fallback.on_limit, fallback.on_breaker, fallback.on_failure) == (True, False, False)
    gov.apply(fallback_rules("default"))
    fallback = fallback_of(gov)
    assert (fallback.on_limit, fallback.on_breaker, fallback.on_failure) == (True, True, True)


def test_request_key() -> None:
    assert request_key(Request(b"x")) == b"x"
    assert request_key(struct_pb2.Value(string_value="q")) == struct_pb2.Value(
        string_value="q"
    ).SerializeToString(deterministic=True)
    assert request_key({"a": 1}) == repr({"a": 1})
