"""The environment table of :mod:`telemetry.config`, entry by entry: what each variable sets, which
of a traces-only and a general OTLP variable wins, and that a bad value names its variable (the
first bad one in reading order when there are several)."""

from __future__ import annotations

from typing import Any

import pytest

from telemetry import ConfigError, TelemetryConfig
from telemetry.config_defaults import DEFAULT_SENSITIVE_KEYS


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("OTEL_TRACES_EXPORTER", "console", "traces_exporter", "console"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "otlp_insecure", True),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,c=%20d", "otlp_headers", {"a": "b", "c": " d"}),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", " /ca.pem ", "otlp_certificate", "/ca.pem"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP", "otlp_compression", "gzip"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64", "span_batch_size", 64),
        ("OTEL_BSP_SCHEDULE_DELAY", "250", "span_schedule_delay", 0.25),
        ("OTEL_PROPAGATORS", " TraceContext , ,baggage", "propagators", ("tracecontext", "baggage")),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "7", "event_attribute_count_limit", 7),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "3", "span_event_count_limit", 3),
        ("TELEMETRY_LOG_FORMAT", "Console", "log_format", "console"),
        ("TELEMETRY_CLIENT_ACCESS_LOG", "ALL", "client_access_log", "all"),
        ("TELEMETRY_METRICS_PORT", "9000", "metrics_port", 9000),
        ("TELEMETRY_METRICS_HOST", "127.0.0.1", "metrics_host", "127.0.0.1"),
        ("TELEMETRY_INBOUND_BAGGAGE", "*", "inbound_baggage", None),
        ("TELEMETRY_INBOUND_BAGGAGE", "none", "inbound_baggage", ()),
        ("TELEMETRY_INBOUND_BAGGAGE", "user, tenant", "inbound_baggage", ("user", "tenant")),
        ("TELEMETRY_SENSITIVE_KEYS", "X-Tenant-*,!token", "sensitive_keys",
         (*DEFAULT_SENSITIVE_KEYS, "x-tenant-*", "!token")),
        ("OTEL_SERVICE_NAME", "   ", "service_name", "unknown_service"),  # blank: unset
    ],
)  # fmt: skip
def test_each_variable_sets_its_field(variable: str, value: str, field: str, expected: Any) -> None:
    assert getattr(TelemetryConfig.from_env({variable: value}), field) == expected


@pytest.mark.parametrize(
    ("suffix", "traces", "general", "field", "expected"),
    [
        ("PROTOCOL", "http/protobuf", "thrift", "otlp_protocol", "http/protobuf"),
        ("INSECURE", "false", "maybe", "otlp_insecure", False),
        ("HEADERS", "a=1", "novalue", "otlp_headers", {"a": "1"}),
        ("TIMEOUT", "1500", "x", "export_timeout", 1.5),
        ("COMPRESSION", "none", "br", "otlp_compression", "none"),
        ("CLIENT_KEY", "/traces.key", "/general.key", "otlp_client_key", "/traces.key"),
    ],
)
def test_the_traces_variable_wins_and_the_general_one_is_not_read(
    suffix: str, traces: str, general: str, field: str, expected: Any
) -> None:
    env = {f"OTEL_EXPORTER_OTLP_TRACES_{suffix}": traces, f"OTEL_EXPORTER_OTLP_{suffix}": general}
    if suffix == "CLIENT_KEY":  # mTLS needs both halves
        env["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] = "/c.pem"
    assert getattr(TelemetryConfig.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("variable", "as_is"),
    [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", True), ("OTEL_EXPORTER_OTLP_ENDPOINT", False)],
)
def test_only_the_traces_endpoint_is_used_as_is(variable: str, as_is: bool) -> None:
    cfg = TelemetryConfig.from_env({variable: "http://collector:4318"})
    assert cfg.otlp_endpoint == "http://collector:4318" and cfg.otlp_endpoint_as_is is as_is
    keyword = TelemetryConfig.from_env({variable: "http://a:1"}, otlp_endpoint="http://b:2")
    assert keyword.otlp_endpoint_as_is is False  # a keyword endpoint is a base URL


def test_resource_attributes_give_the_service_name_and_version() -> None:
    cfg = TelemetryConfig.from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,service.version=2"})
    assert (cfg.service_name, cfg.service_version) == ("a", "2")
    assert TelemetryConfig.from_env({"OTEL_RESOURCE_ATTRIBUTES": ","}).resource_attributes == {}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OTEL_TRACES_EXPORTER",
            "OTLP",
            "OTEL_TRACES_EXPORTER: 'OTLP' is not one of otlp, console, none",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be >= 1"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "BR", "OTEL_EXPORTER_OTLP_COMPRESSION: 'br' is not one of"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: scheme"),
        ("OTEL_BSP_SCHEDULE_DELAY", "x", "OTEL_BSP_SCHEDULE_DELAY: expected a number"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "-1", "OTEL_SPAN_LINK_COUNT_LIMIT: must be within 0..2147483647"),
        ("TELEMETRY_LOG_FORMAT", "XML", "TELEMETRY_LOG_FORMAT: 'xml' is not one of json, console"),
        ("TELEMETRY_METRICS_PORT", "x", "TELEMETRY_METRICS_PORT: expected an integer"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        TelemetryConfig.from_env({variable: value})


def test_the_first_bad_variable_in_reading_order_is_reported() -> None:
    env = {"TELEMETRY_LOG_LEVEL": "loud", "OTEL_BSP_MAX_QUEUE_SIZE": "0", "OTEL_SDK_DISABLED": "maybe"}
    with pytest.raises(ConfigError, match=r"^OTEL_SDK_DISABLED:"):
        TelemetryConfig.from_env(env)
    # The general attribute limit is read before the limits it stands in for.
    env = {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "x", "OTEL_ATTRIBUTE_COUNT_LIMIT": "y"}
    with pytest.raises(ConfigError, match=r"^OTEL_ATTRIBUTE_COUNT_LIMIT:"):
        TelemetryConfig.from_env(env)


def test_the_first_bad_field_in_checking_order_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"^log_level:"):
        TelemetryConfig(log_level="loud", metrics_port=-1, otlp_endpoint="x")
    with pytest.raises(ConfigError, match=r"^otlp_endpoint:"):
        TelemetryConfig(metrics_port=-1, otlp_endpoint="x", export_timeout=0)
    with pytest.raises(ConfigError, match=r"^export_timeout:"):
        TelemetryConfig(metrics_port=-1, export_timeout=0)
