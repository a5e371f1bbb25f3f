"""The OTLP exporter spec's rules as pure functions and configuration: endpoint URLs for OTLP/HTTP,
signal-specific variables over general ones, compression values, and how failures are classified
(retryable codes and statuses, RetryInfo, Retry-After, partial success)."""

from __future__ import annotations

import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from telemetry import ConfigError, TelemetryConfig
from telemetry.tracing.otlp_failures import (
    http_failure,
    parse_retry_after,
    partial_success,
    retry_info_delay,
)
from telemetry.tracing.setup import otlp_http_url


@pytest.mark.parametrize(
    ("endpoint", "as_is", "url"),
    [
        (None, False, "http://localhost:4318/v1/traces"),
        ("http://c:4318", False, "http://c:4318/v1/traces"),
        ("http://c:4318/", False, "http://c:4318/v1/traces"),
        ("http://c:4318/prefix", False, "http://c:4318/prefix/v1/traces"),
        ("http://c:4318/prefix/", False, "http://c:4318/prefix/v1/traces"),
        ("https://c/a/b", False, "https://c/a/b/v1/traces"),
        ("http://c:4318/v1/traces", False, "http://c:4318/v1/traces/v1/traces"),  # always appended
        ("http://c:4318/custom/spans", True, "http://c:4318/custom/spans"),
        ("http://c:4318/", True, "http://c:4318/"),
        ("http://c:4318", True, "http://c:4318/"),  # no path: the root path
    ],
)
def test_http_endpoint_urls(endpoint: str | None, as_is: bool, url: str) -> None:
    assert otlp_http_url(endpoint, as_is) == url


def test_the_traces_endpoint_is_used_as_is_and_the_general_one_is_a_base() -> None:
    general = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/p"})
    assert general.otlp_endpoint == "http://c:4318/p" and not general.otlp_endpoint_as_is
    traces = TelemetryConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/in",
        }
    )
    assert traces.otlp_endpoint == "http://traces:4318/in" and traces.otlp_endpoint_as_is
    # A keyword endpoint replaces the variable's, and is a base URL unless said otherwise.
    keyword = TelemetryConfig.from_env(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/in"},
        otlp_endpoint="http://kw:4318",
    )
    assert keyword.otlp_endpoint == "http://kw:4318" and not keyword.otlp_endpoint_as_is
    exact = TelemetryConfig.from_env({}, otlp_endpoint="http://kw:1/x", otlp_endpoint_as_is=True)
    assert exact.otlp_endpoint_as_is


def test_signal_specific_variables_win_over_general_ones() -> None:
    cfg = TelemetryConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": "a=general",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=traces%20only",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "9000",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_INSECURE": "false",
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
        }
    )
    assert cfg.otlp_protocol == "http/protobuf"
    assert dict(cfg.otlp_headers) == {"b": "traces only"}  # replaced, not merged
    assert cfg.export_timeout == 1.5
    assert cfg.otlp_compression == "gzip"
    assert cfg.otlp_insecure is True
    general = TelemetryConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP"})
    assert general.otlp_compression == "gzip" and TelemetryConfig().otlp_compression == "none"


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"]
)
def test_an_unknown_compression_names_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: 'brotli' is not one of gzip, none"):
        TelemetryConfig.from_env({variable: "brotli"})
    with pytest.raises(ConfigError, match=r"^otlp_compression: 'zstd'"):
        TelemetryConfig(otlp_compression="zstd")  # type: ignore[arg-type]


def _status_bin(code: int, delay_ms: int | None) -> bytes:
    status = status_pb2.Status(code=code, message="slow down")
    if delay_ms is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromMilliseconds(delay_ms)
        status.details.add().Pack(info)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason="quota"))
    return bytes(status.SerializeToString())


def test_retry_info_is_read_from_the_status_details_trailer() -> None:
    trailer = "grpc-status-details-bin"
    assert retry_info_delay([(trailer, _status_bin(8, 1500))]) == 1.5
    assert retry_info_delay([("other", b"x"), (trailer, _status_bin(8, 0))]) == 0.0
    assert retry_info_delay([(trailer, _status_bin(8, None))]) is None
    assert retry_info_delay([(trailer, b"\xff\xff not a status")]) is None
    assert retry_info_delay(None) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # an HTTP-date, 30 s after "now"
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now=now) == seconds


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (502, True), (503, True), (504, True), (400, False), (401, False),
     (404, False), (413, False), (500, False), (501, False)],
)  # fmt: skip
def test_http_statuses_retryable_per_otlp(status: int, retryable: bool) -> None:
    body = status_pb2.Status(code=3, message="bad span").SerializeToString()
    failure = http_failure(status, "2", body)
    assert failure.retryable is retryable
    assert failure.delay == (2.0 if retryable else None)
    assert str(failure) == f"HTTP {status}: bad span"


def test_partial_success_is_decoded_from_the_response() -> None:
    reply = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too big")
    ).SerializeToString()
    assert partial_success(reply) == (3, "too big")
    assert partial_success(ExportTraceServiceResponse().SerializeToString()) == (0, "")
    assert partial_success(b"\xff\xff\xff") == (0, "")
