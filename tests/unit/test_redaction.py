"""Redaction by key pattern (log lines, nested values, access-line metadata) and of URLs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import telemetry
from telemetry.config import TelemetryConfig
from telemetry.config_defaults import DEFAULT_SENSITIVE_KEYS
from telemetry.logging.access import AccessLog
from telemetry.logging.pipeline import PIPELINE
from telemetry.logging.redaction import MAX_CACHED_KEY, REDACTED, Redactor, redact_userinfo
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side

DEFAULTS = Redactor(DEFAULT_SENSITIVE_KEYS)
ISSUE_KEYS = ["api-key", "x-access-token", "x-password", "X_Auth_Token", "authorization", "Cookie",
              "set-cookie", "x-api-key", "Proxy-Authorization", "client_secret", "sessionId",
              "aws_credentials", "private_key", "PrivateKey", "db_passwd", "apiKey", "refresh_token",
              "API_KEY", "x-csrf-token"]  # fmt: skip
HARMLESS_KEYS = ["event", "level", "timestamp", "service", "logger", "trace_id", "span_id", "exception",
                 "user", "grpc.method", "grpc.metadata", "peer.address", "key", "keyboard", "monkey",
                 "author", "authority", ":authority", "user-agent", "content-type", "x-tenant",
                 "grpc.code", "http.route", "url.query"]  # fmt: skip


@pytest.fixture
def patterns() -> Iterator[None]:
    saved = PIPELINE.sensitive
    yield
    PIPELINE.sensitive = saved


@pytest.mark.parametrize("key", ISSUE_KEYS)
def test_the_issues_keys_are_redacted_in_log_lines(key: str, logs: Any) -> None:
    telemetry.get_logger("app").info("with a secret", **{key: "s3cr3t", "user": "bob"})
    (line,) = logs.matching(event="with a secret")
    assert line[key] == REDACTED and line["user"] == "bob"


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_harmless_keys_stay(key: str) -> None:
    assert not DEFAULTS.sensitive(key)
    assert DEFAULTS.redact({key: "value"}) == {key: "value"}


def test_tokens_used_is_redacted_by_default_and_kept_by_an_exemption() -> None:
    # Fail closed (the module's docstring): *token* matches it, like Rails and Sentry would.
    assert DEFAULTS.redact({"tokens_used": 12})["tokens_used"] == REDACTED
    exempt = Redactor((*DEFAULT_SENSITIVE_KEYS, "!tokens_used", "!gen_ai.usage.*"))
    line = exempt.redact({"tokens_used": 12, "gen_ai.usage.input_tokens": 3, "x-access-token": "t"})
    assert line == {"tokens_used": 12, "gen_ai.usage.input_tokens": 3, "x-access-token": REDACTED}


def test_nested_values_are_redacted_in_copies(logs: Any) -> None:
    metadata = {"authorization": "Bearer s3cr3t", "x-tenant": "acme", "deep": {"Password": "hunter2"}}
    items: list[Any] = [{"api_key": "k1", "n": 1}, "plain", ({"session": "sid"},)]
    telemetry.get_logger("app").info("nested", metadata=metadata, items=items, count=(1, 2))
    (line,) = logs.matching(event="nested")
    assert line["metadata"] == {
        "authorization": REDACTED,
        "x-tenant": "acme",
        "deep": {"Password": REDACTED},
    }
    assert line["items"] == [{"api_key": REDACTED, "n": 1}, "plain", ({"session": REDACTED},)]
    assert line["count"] == (1, 2)
    # The caller's objects are untouched.
    assert metadata["authorization"] == "Bearer s3cr3t" and metadata["deep"] == {"Password": "hunter2"}
    assert items[0]["api_key"] == "k1"


def test_a_value_without_anything_sensitive_is_the_same_object() -> None:
    value = {"a": [1, {"b": 2}], "c": (3,)}
    event = {"v": value}
    assert DEFAULTS.redact(event)["v"] is value


def test_extra_patterns_from_the_config(patterns: None, logs: Any) -> None:
    cfg = TelemetryConfig.from_env(
        {"TELEMETRY_SENSITIVE_KEYS": "x-tenant-*, SSN ,*-pin,!session_count"}, service_name="s"
    )
    PIPELINE.sensitive = frozenset(cfg.sensitive_keys)
    telemetry.get_logger("app").info(
        "config", **{"X-Tenant-Key": "k", "ssn": "1", "card_pin": "0000", "session_count": 4,
                     "session_id": "sid", "x-access-token": "t", "tenant": "acme"}
    )  # fmt: skip
    (line,) = logs.matching(event="config")
    assert line["X-Tenant-Key"] == line["ssn"] == line["card_pin"] == REDACTED
    assert line["session_id"] == line["x-access-token"] == REDACTED  # the defaults still hold
    assert line["session_count"] == 4 and line["tenant"] == "acme"


def _finished(log: AccessLog, metadata: tuple[tuple[str, Any], ...]) -> Any:
    info = MethodInfo("/shop.Orders/Place", RpcKind.UNARY, log.side)
    log.prepare(info)
    state = CallState(info, 0.0, metadata, "ipv4:10.0.0.1:5")
    state.span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))
    queued: list[Any] = []
    original, PIPELINE.emit_later = PIPELINE.emit_later, queued.append
    try:
        log.on_finish(state)
    finally:
        PIPELINE.emit_later = original
    return queued[0]


def test_access_line_metadata_is_redacted_by_pattern() -> None:
    log = AccessLog("shop", Side.SERVER, log_metadata=True, sensitive_keys=DEFAULT_SENSITIVE_KEYS)
    metadata = tuple((key.lower(), "s3cr3t") for key in ISSUE_KEYS)
    done = _finished(log, (*metadata, ("x-tenant", "acme"), ("trace-bin", b"\x00")))
    assert done.json_line() is None
    line = PIPELINE.redact(done.event())
    assert line["grpc.metadata"] == {**{key: REDACTED for key, _ in metadata}, "x-tenant": "acme"}


def test_the_pipeline_redacts_metadata_an_access_log_left_in_clear() -> None:
    done = _finished(AccessLog("shop", Side.SERVER, log_metadata=True), (("x-access-token", "t"),))
    assert done.event()["grpc.metadata"] == {"x-access-token": "t"}  # this log has no keys of its own
    assert PIPELINE.redact(done.event())["grpc.metadata"] == {"x-access-token": REDACTED}


def test_a_pattern_over_a_plain_line_key_takes_the_general_path(patterns: None) -> None:
    log = AccessLog("shop", Side.SERVER)
    assert _finished(log, ()).json_line() is not None
    PIPELINE.sensitive = frozenset({"peer.*"})
    done = _finished(log, ())
    assert done.json_line() is None
    assert PIPELINE.redact(done.event())["peer.address"] == REDACTED


def test_the_decision_cache_stays_bounded_under_many_distinct_keys() -> None:
    redactor = Redactor(DEFAULT_SENSITIVE_KEYS, cache_size=256)
    for i in range(20_000):
        event = redactor.redact({f"field_{i}": 1, f"x-token-{i}": "t", "nested": {f"k{i}": 1}})
        assert event[f"x-token-{i}"] == REDACTED and event[f"field_{i}"] == 1
        redactor.query(f"p{i}=1&secret_{i}=2")
    assert len(redactor.decisions) <= 256 and len(redactor.query_decisions) <= 256
    assert len(redactor._safe) <= 256  # the keys seen harmless, for the one-call check of a line
    # A long key (an attacker's 8 KB metadata key) is decided, never stored.
    long_key = "x" * 8000 + "-token"
    assert redactor.sensitive(long_key) and long_key not in redactor.decisions
    assert all(len(key) <= MAX_CACHED_KEY for key in redactor.decisions if isinstance(key, str))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=shoes&page=2", "q=shoes&page=2"),
        ("token=abc&q=x", "token=REDACTED&q=x"),
        ("password=hunter2&user=bob", "password=REDACTED&user=bob"),
        ("sig=abc&X-Amz-Signature=def&AWSAccessKeyId=A&X-Goog-Signature=g&Signature=s",
         "sig=REDACTED&X-Amz-Signature=REDACTED&AWSAccessKeyId=REDACTED&X-Goog-Signature=REDACTED"
         "&Signature=REDACTED"),
        ("SIG=abc&signature=def", "SIG=abc&signature=def"),  # semconv: its list is case-sensitive
        ("Access_Token=a&API-KEY=b&x_password=c", "Access_Token=REDACTED&API-KEY=REDACTED"
         "&x_password=REDACTED"),
        ("%74oken=abc&api%5Fkey=k&X%2DAmz%2DSignature=s", "%74oken=REDACTED&api%5Fkey=REDACTED"
         "&X%2DAmz%2DSignature=REDACTED"),
        ("client+secret=x&client_secret=y", "client+secret=REDACTED&client_secret=REDACTED"),
        ("token=a&q=1&token=b&token=c", "token=REDACTED&q=1&token=REDACTED&token=REDACTED"),
        ("token=&password=&q=", "token=&password=&q="),  # empty: nothing to hide
        ("token&q=1", "token&q=1"),
        ("token=a=b&q=c=d", "token=REDACTED&q=c=d"),
        ("", ""),
    ],
)  # fmt: skip
def test_query_values_of_sensitive_parameters_are_replaced(query: str, expected: str) -> None:
    assert DEFAULTS.query(query) == expected


def test_a_query_with_nothing_sensitive_is_returned_as_is() -> None:
    query = "q=shoes&page=2&sort=price"
    assert DEFAULTS.query(query) is query


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@example.com/p?sig=1&q=x#access_token=abc&state=s",
         "https://REDACTED:REDACTED@example.com/p?sig=REDACTED&q=x#access_token=REDACTED&state=s"),
        ("https://ghp_token@github.com/org/repo.git", "https://REDACTED@github.com/org/repo.git"),
        ("http://u:p@ss@example.com:8080/x", "http://REDACTED:REDACTED@example.com:8080/x"),
        ("http://example.com/users/bob@example.com", "http://example.com/users/bob@example.com"),
        ("/users/bob@example.com?token=t", "/users/bob@example.com?token=REDACTED"),
        ("https://example.com/search?q=OpenTelemetry", "https://example.com/search?q=OpenTelemetry"),
        ("https://example.com/#section-2", "https://example.com/#section-2"),
    ],
)  # fmt: skip
def test_urls_lose_userinfo_and_sensitive_query_values(url: str, expected: str) -> None:
    assert DEFAULTS.url(url) == expected


def test_userinfo_is_redacted_only_in_an_authority() -> None:
    assert redact_userinfo("mailto:bob@example.com") == "mailto:bob@example.com"
    assert redact_userinfo("//user:pw@host/x") == "//user:pw@host/x"  # an origin-form path, not a URL
    assert redact_userinfo("ftp://a:b@host") == "ftp://REDACTED:REDACTED@host"
