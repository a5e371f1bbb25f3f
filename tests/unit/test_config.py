"""Configuration: environment variables read once, kwargs win, bad values name the variable."""

from __future__ import annotations

import pytest

from telemetry import ConfigError, TelemetryConfig


def test_defaults() -> None:
    cfg = TelemetryConfig.from_env({})
    assert cfg.service_name == "unknown_service"
    assert cfg.sampler == "parentbased_always_on"
    assert cfg.propagators == ("tracecontext", "baggage")
    assert cfg.metrics_port == 9464 and cfg.traces_exporter == "otlp"
    assert "grpc.health.v1.Health" in cfg.untraced_services
    assert "etcdserverpb.KV" in cfg.untraced_services


def test_standard_variables_are_read() -> None:
    cfg = TelemetryConfig.from_env(
        {
            "OTEL_SERVICE_NAME": "order",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2,deployment.environment=prod%20eu",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_SDK_DISABLED": "true",
            "OTEL_PROPAGATORS": "tracecontext",
            "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
            "TELEMETRY_METRICS_PORT": "none",
            "TELEMETRY_LOG_LEVEL": "WARNING",
            "TELEMETRY_SENSITIVE_KEYS": "x-secret",
        }
    )
    assert cfg.service_name == "order" and cfg.service_version == "1.2"
    assert cfg.resource_attributes["deployment.environment"] == "prod eu"
    assert cfg.otlp_endpoint == "http://collector:4318" and cfg.otlp_protocol == "http/protobuf"
    assert cfg.export_timeout == 2.5
    assert cfg.sampler == "parentbased_traceidratio" and cfg.sampler_arg == 0.25
    assert cfg.tracing_enabled is False
    assert cfg.propagators == ("tracecontext",)
    assert cfg.span_queue_size == 4096 and cfg.metrics_port is None
    assert cfg.log_level == "warning" and "x-secret" in cfg.sensitive_keys


def test_signal_specific_variables_win_and_service_name_beats_resource() -> None:
    cfg = TelemetryConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-resource",
            "OTEL_SERVICE_NAME": "from-variable",
        }
    )
    assert cfg.otlp_endpoint == "http://traces:4317"
    assert cfg.service_name == "from-variable"


def test_keyword_arguments_override_the_environment() -> None:
    cfg = TelemetryConfig.from_env(
        {"OTEL_SERVICE_NAME": "env", "TELEMETRY_METRICS_PORT": "9000"},
        service_name="kw",
        metrics_port=None,
    )
    assert cfg.service_name == "kw" and cfg.metrics_port is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER: 'sometimes' is not one of"),
        ("OTEL_TRACES_SAMPLER_ARG", "half", "OTEL_TRACES_SAMPLER_ARG: expected a number"),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift'"),
        ("OTEL_SDK_DISABLED", "maybe", "OTEL_SDK_DISABLED: expected true or false"),
        ("OTEL_PROPAGATORS", "tracecontext,b3", "OTEL_PROPAGATORS: 'b3' is not one of"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "OTEL_RESOURCE_ATTRIBUTES: expected key=value"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "OTEL_BSP_MAX_QUEUE_SIZE: must be >= 1"),
        ("TELEMETRY_METRICS_PORT", "70000", "TELEMETRY_METRICS_PORT: must be within 0..65535"),
        ("TELEMETRY_LOG_LEVEL", "loud", "TELEMETRY_LOG_LEVEL: 'loud' is not one of"),
        ("TELEMETRY_CLIENT_ACCESS_LOG", "some", "TELEMETRY_CLIENT_ACCESS_LOG: 'some' is not one of"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        TelemetryConfig.from_env({variable: value})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sampler_arg", 2.0, "sampler_arg: a ratio must be within"),
        ("span_batch_size", 10_000, "span_batch_size: must not exceed span_queue_size"),
        ("latency_buckets", (1.0, 0.5), "latency_buckets:"),
        ("service_name", "", "service_name:"),
        ("log_format", "xml", "log_format:"),
    ],
)
def test_bad_fields_name_the_field(field: str, value: object, message: str) -> None:
    overrides = {field: value}
    if field == "sampler_arg":
        overrides["sampler"] = "traceidratio"
    with pytest.raises(ConfigError, match=f"^{message}"):
        TelemetryConfig(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0.0, 2e6, 1e308])
def test_a_rate_limiting_sampler_arg_outside_its_range_is_refused(rate: float) -> None:
    with pytest.raises(ConfigError, match=r"^sampler_arg: traces per second must be in \(0, 1e\+06\]"):
        TelemetryConfig(sampler="parentbased_ratelimiting", sampler_arg=rate)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        TelemetryConfig.from_env({}, colour="blue")
