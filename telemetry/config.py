"""Typed, validated, frozen configuration for :func:`telemetry.init`.

Defaults are defined once, on :class:`TelemetryConfig`. Environment variables are read in one place,
:meth:`TelemetryConfig.from_env`, using the OpenTelemetry names where the spec defines them and
``TELEMETRY_*`` for the rest. Keyword arguments override the environment. Every value is validated;
a bad one raises :class:`ConfigError` naming the variable or field.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import unquote

OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpCompression = Literal["gzip", "none"]
TracesExporter = Literal["otlp", "console", "none"]
LogFormat = Literal["json", "console"]
ClientAccessLog = Literal["all", "errors", "off"]

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "ratelimiting",
    "parentbased_ratelimiting",
)
PROPAGATORS = ("tracecontext", "baggage", "none")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Services whose RPCs are infrastructure noise in traces and access logs.
DEFAULT_UNTRACED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
    "etcdserverpb.KV",
    "etcdserverpb.Lease",
    "etcdserverpb.Watch",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
    "etcdserverpb.Auth",
    "opentelemetry.proto.collector.trace.v1.TraceService",
)
# Key names whose values are redacted (log lines, access-line metadata, header attributes): patterns
# matched whole, case-insensitively, "-" and "_" alike, "*" any run; "!name" exempts a name. Substring
# patterns fail closed (``*token*`` also redacts ``tokens_used``): see telemetry.logging.redaction.
DEFAULT_SENSITIVE_KEYS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "*token*",
    "*secret*",
    "*password*",
    "*passwd*",
    "*api-key*",
    "*apikey*",
    "*session*",
    "*credential*",
    "*private-key*",
    "*privatekey*",
)
# go-grpc-prometheus / Prometheus client default buckets, so community dashboards line up.
DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable or field."""


MAX_SPAN_LIMIT = 2**31 - 1
"""The largest span limit accepted: OTLP's dropped counts are 32-bit, and the SDK sizes a deque by
the event and link limits (a larger value there fails every handler span)."""
SPAN_LIMIT_FIELDS = (
    "span_attribute_count_limit",
    "span_attribute_value_length_limit",
    "span_event_count_limit",
    "span_link_count_limit",
    "event_attribute_count_limit",
    "link_attribute_count_limit",
)

MAX_TRACES_PER_SECOND = 1_000_000.0
"""The rate-limiting sampler's ceiling: above any span rate one process exports, so a larger value
is a typo (or ``1e308``), refused."""


@dataclass(frozen=True, kw_only=True)
class TelemetryConfig:
    """Everything :func:`telemetry.init` needs. Build it with :meth:`from_env` to honour env vars."""

    service_name: str = "unknown_service"
    service_version: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)

    # Tracing
    tracing_enabled: bool = True
    traces_exporter: TracesExporter = "otlp"
    otlp_endpoint: str | None = None
    otlp_protocol: OtlpProtocol = "grpc"
    # OTLP exporter spec: ``otlp_endpoint`` is a base URL (OTEL_EXPORTER_OTLP_ENDPOINT) to which
    # OTLP/HTTP appends ``v1/traces``; True: it is the traces URL itself, used as is
    # (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). gRPC uses only its scheme, host and port either way.
    otlp_endpoint_as_is: bool = False
    # Spec: applies only to a gRPC endpoint without an http/https scheme (the scheme decides
    # otherwise); endpoints here need a scheme, so this is accepted and has no effect.
    otlp_insecure: bool | None = None
    otlp_headers: Mapping[str, str] = field(default_factory=dict)
    otlp_compression: OtlpCompression = "none"
    # PEM files (exporter spec: Certificate File, Client Key File, Client Certificate File): the
    # CA bundle that verifies the collector, and this client's key and certificate for mTLS.
    otlp_certificate: str | None = None
    otlp_client_key: str | None = None
    otlp_client_certificate: str | None = None
    export_timeout: float = 5.0
    span_queue_size: int = 2048
    span_batch_size: int = 512
    span_schedule_delay: float = 1.0
    sampler: str = "parentbased_always_on"
    sampler_arg: float | None = None
    propagators: tuple[str, ...] = ("tracecontext", "baggage")
    untraced_services: tuple[str, ...] = DEFAULT_UNTRACED_SERVICES
    # Span limits (trace SDK spec, "Span Limits"), for RPC spans and handler spans alike: what a
    # span keeps of the attributes, events and links added to it; the rest is dropped and counted.
    # The value length limit (None: none) applies to span, event and link attributes.
    span_attribute_count_limit: int = 128
    span_attribute_value_length_limit: int | None = None
    span_event_count_limit: int = 128
    span_link_count_limit: int = 128
    event_attribute_count_limit: int = 128
    link_attribute_count_limit: int = 128

    # Logging
    log_level: str = "info"
    log_format: LogFormat = "json"
    log_stream: TextIO | None = None  # None: sys.stdout at configure time
    log_queue_size: int = 10_000
    capture_stdlib_logging: bool = True
    access_log: bool = True
    # The server's line covers a successful RPC; clients log failures they saw (including calls
    # refused locally, which no server logged). "all" logs every client call too.
    client_access_log: ClientAccessLog = "errors"
    log_metadata: bool = False
    log_payloads: bool = False
    payload_max_chars: int = 512
    sensitive_keys: tuple[str, ...] = DEFAULT_SENSITIVE_KEYS
    # The caller's W3C baggage keys a gRPC server keeps (None: all, the default inside a mesh of
    # services built with this package; (): none, for a server facing the outside). HTTP entry
    # points drop it unless told otherwise: ``tel.asgi(app, trusted_baggage=...)``.
    inbound_baggage: tuple[str, ...] | None = None

    # Metrics
    metrics_enabled: bool = True
    metrics_port: int | None = 9464
    metrics_host: str = "0.0.0.0"
    latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    max_method_labels: int = 500

    # Deadlines
    deadline_propagation: bool = True

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> TelemetryConfig:
        """Read the environment (``os.environ`` by default); keyword arguments win over it."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values = _read_env(env)
        if "otlp_endpoint" in overrides:  # a keyword endpoint is a base URL unless told otherwise
            values.pop("otlp_endpoint_as_is", None)
        values.update({k: v for k, v in overrides.items() if v is not None or k in _NULLABLE})
        return cls(**values)

    def replace(self, **changes: Any) -> TelemetryConfig:
        return dataclasses.replace(self, **changes)


_NULLABLE = {
    "metrics_port", "otlp_endpoint", "sampler_arg", "service_version", "log_stream", "inbound_baggage",
    "span_attribute_value_length_limit",
}  # fmt: skip


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:  # noqa: PLR0915 - one flat list of variables
    out: dict[str, Any] = {}

    def get(name: str) -> str | None:
        raw = env.get(name)
        return raw.strip() if raw is not None and raw.strip() != "" else None

    resource = _parse_key_values("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES"))
    if resource:
        out["resource_attributes"] = resource
        if "service.name" in resource:
            out["service_name"] = resource["service.name"]
        if "service.version" in resource:
            out["service_version"] = resource["service.version"]
    if (name := get("OTEL_SERVICE_NAME")) is not None:
        out["service_name"] = name  # the spec gives OTEL_SERVICE_NAME precedence
    if (disabled := get("OTEL_SDK_DISABLED")) is not None:
        out["tracing_enabled"] = not _parse_bool("OTEL_SDK_DISABLED", disabled)
    if (exporter := get("OTEL_TRACES_EXPORTER")) is not None:
        out["traces_exporter"] = _choice("OTEL_TRACES_EXPORTER", exporter, ("otlp", "console", "none"))

    for var in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if (proto := get(var)) is not None:
            out["otlp_protocol"] = _choice(var, proto, ("grpc", "http/protobuf"))
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if (endpoint := get(var)) is not None:
            out["otlp_endpoint"] = _parse_endpoint(var, endpoint)
            # Spec: the signal-specific URL is used as is; the general one is a base URL.
            out["otlp_endpoint_as_is"] = var == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"):
        if (insecure := get(var)) is not None:
            out["otlp_insecure"] = _parse_bool(var, insecure)
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if (headers := get(var)) is not None:
            out["otlp_headers"] = _parse_key_values(var, headers)
            break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if (timeout := get(var)) is not None:
            out["export_timeout"] = _parse_float(var, timeout, minimum=1) / 1000.0  # spec: ms
            break
    for field_name, suffix in (("otlp_certificate", "CERTIFICATE"), ("otlp_client_key", "CLIENT_KEY"),
                               ("otlp_client_certificate", "CLIENT_CERTIFICATE")):  # fmt: skip
        for var in (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}"):
            if path := get(var):
                out[field_name] = path
                break
    for var in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        if (compression := get(var)) is not None:
            out["otlp_compression"] = _choice(var, compression.lower(), ("gzip", "none"))
            break
    if (size := get("OTEL_BSP_MAX_QUEUE_SIZE")) is not None:
        out["span_queue_size"] = _parse_int("OTEL_BSP_MAX_QUEUE_SIZE", size, minimum=1)
    if (batch := get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")) is not None:
        out["span_batch_size"] = _parse_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch, minimum=1)
    if (delay := get("OTEL_BSP_SCHEDULE_DELAY")) is not None:
        out["span_schedule_delay"] = _parse_float("OTEL_BSP_SCHEDULE_DELAY", delay, minimum=1) / 1e3

    if (sampler := get("OTEL_TRACES_SAMPLER")) is not None:
        out["sampler"] = _choice("OTEL_TRACES_SAMPLER", sampler.lower(), SAMPLERS)
    if (arg := get("OTEL_TRACES_SAMPLER_ARG")) is not None:
        out["sampler_arg"] = _parse_float("OTEL_TRACES_SAMPLER_ARG", arg, minimum=0)
    if (props := get("OTEL_PROPAGATORS")) is not None:
        names = tuple(p.strip().lower() for p in props.split(",") if p.strip())
        for p in names:
            _choice("OTEL_PROPAGATORS", p, PROPAGATORS)
        out["propagators"] = names
    out.update(_span_limits(get))

    if (level := get("TELEMETRY_LOG_LEVEL")) is not None:
        out["log_level"] = _choice("TELEMETRY_LOG_LEVEL", level.lower(), LOG_LEVELS)
    if (fmt := get("TELEMETRY_LOG_FORMAT")) is not None:
        out["log_format"] = _choice("TELEMETRY_LOG_FORMAT", fmt.lower(), ("json", "console"))
    if (client_log := get("TELEMETRY_CLIENT_ACCESS_LOG")) is not None:
        out["client_access_log"] = _choice(
            "TELEMETRY_CLIENT_ACCESS_LOG", client_log.lower(), ("all", "errors", "off")
        )
    if (port := get("TELEMETRY_METRICS_PORT")) is not None:
        out["metrics_port"] = (
            None if port.lower() == "none" else _parse_int("TELEMETRY_METRICS_PORT", port, 0, 65535)
        )
    if (host := get("TELEMETRY_METRICS_HOST")) is not None:
        out["metrics_host"] = host
    if (kept := get("TELEMETRY_INBOUND_BAGGAGE")) is not None:
        # "*": every key (the default); "none" or empty: no baggage; else the keys to keep.
        names = tuple(k.strip() for k in kept.split(",") if k.strip())
        out["inbound_baggage"] = None if names == ("*",) else () if names in ((), ("none",)) else names
    if (keys := get("TELEMETRY_SENSITIVE_KEYS")) is not None:
        # Added to the defaults: names, patterns ("x-tenant-*"), or "!name" to keep one in clear.
        extra = tuple(k.strip().lower() for k in keys.split(",") if k.strip())
        out["sensitive_keys"] = DEFAULT_SENSITIVE_KEYS + extra
    return out


def _span_limits(get: Callable[[str], str | None]) -> dict[str, int]:
    """The span limits the SDK environment variables set ("Span Limits" in
    https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/): each
    model-specific variable, else the general ``OTEL_ATTRIBUTE_COUNT_LIMIT`` /
    ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`` for the attribute limits, else the default (the spec's
    precedence for attribute limits, https://opentelemetry.io/docs/specs/otel/common/#attribute-limits)."""

    def limit(var: str) -> int | None:
        raw = get(var)
        return None if raw is None else _parse_int(var, raw, 0, MAX_SPAN_LIMIT)

    out: dict[str, int] = {}
    general_count = limit("OTEL_ATTRIBUTE_COUNT_LIMIT")
    general_length = limit("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    for name, var, general in (
        ("span_attribute_count_limit", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", general_count),
        ("span_attribute_value_length_limit", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", general_length),
        ("span_event_count_limit", "OTEL_SPAN_EVENT_COUNT_LIMIT", None),
        ("span_link_count_limit", "OTEL_SPAN_LINK_COUNT_LIMIT", None),
        ("event_attribute_count_limit", "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", general_count),
        ("link_attribute_count_limit", "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", general_count),
    ):
        value = limit(var)
        if value is None:
            value = general
        if value is not None:
            out[name] = value
    return out


def _validate(cfg: TelemetryConfig) -> None:
    if not cfg.service_name or not isinstance(cfg.service_name, str):
        raise ConfigError("service_name: must be a non-empty string")
    _choice("traces_exporter", cfg.traces_exporter, ("otlp", "console", "none"))
    _choice("otlp_protocol", cfg.otlp_protocol, ("grpc", "http/protobuf"))
    _choice("otlp_compression", cfg.otlp_compression, ("gzip", "none"))
    _choice("sampler", cfg.sampler, SAMPLERS)
    _choice("log_level", cfg.log_level, LOG_LEVELS)
    _choice("log_format", cfg.log_format, ("json", "console"))
    _choice("client_access_log", cfg.client_access_log, ("all", "errors", "off"))
    inbound = cfg.inbound_baggage
    if inbound is not None and (
        not isinstance(inbound, tuple) or not all(isinstance(k, str) and k for k in inbound)
    ):
        raise ConfigError(f"inbound_baggage: must be None or a tuple of baggage keys, got {inbound!r}")
    for p in cfg.propagators:
        _choice("propagators", p, PROPAGATORS)
    if cfg.otlp_endpoint is not None:
        _parse_endpoint("otlp_endpoint", cfg.otlp_endpoint)
    if (cfg.otlp_client_key is None) != (cfg.otlp_client_certificate is None):
        raise ConfigError("otlp_client_key, otlp_client_certificate: give both (mTLS) or neither")
    if cfg.sampler.endswith("traceidratio"):
        arg = 1.0 if cfg.sampler_arg is None else cfg.sampler_arg
        if not 0.0 <= arg <= 1.0:
            raise ConfigError(f"sampler_arg: a ratio must be within [0, 1], got {arg}")
    rate = cfg.sampler_arg
    rate_limited = cfg.sampler.endswith("ratelimiting") and rate is not None
    if rate_limited and rate is not None and not 0 < rate <= MAX_TRACES_PER_SECOND:
        raise ConfigError(
            f"sampler_arg: traces per second must be in (0, {MAX_TRACES_PER_SECOND:g}], got {rate}"
        )
    for name in ("export_timeout", "span_schedule_delay"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be > 0, got {getattr(cfg, name)}")
    for name in SPAN_LIMIT_FIELDS:
        value = getattr(cfg, name)
        if value is None and name == "span_attribute_value_length_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SPAN_LIMIT:
            raise ConfigError(f"{name}: must be an integer within 0..{MAX_SPAN_LIMIT}, got {value!r}")
    for name in ("span_queue_size", "span_batch_size", "log_queue_size", "max_method_labels"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"{name}: must be >= 1, got {getattr(cfg, name)}")
    if cfg.span_batch_size > cfg.span_queue_size:
        raise ConfigError("span_batch_size: must not exceed span_queue_size")
    if cfg.metrics_port is not None and not 0 <= cfg.metrics_port <= 65535:
        raise ConfigError(f"metrics_port: must be within 0..65535, got {cfg.metrics_port}")
    buckets = list(cfg.latency_buckets)
    if not buckets or buckets != sorted(set(buckets)) or buckets[0] <= 0:
        raise ConfigError("latency_buckets: must be positive, strictly increasing and non-empty")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    low = raw.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _parse_float(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if math.isnan(value) or value < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {raw!r}")
    return value


def _parse_int(name: str, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"within {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name}: must be {bound}, got {raw!r}")
    return value


def _parse_endpoint(name: str, raw: str) -> str:
    if "://" not in raw:
        raise ConfigError(f"{name}: expected a URL such as http://localhost:4317, got {raw!r}")
    scheme = raw.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{name}: scheme must be http or https, got {raw!r}")
    return raw


def _parse_key_values(name: str, raw: str | None) -> dict[str, str]:
    """W3C-baggage-like ``k1=v1,k2=v2`` with percent-encoded values (OTEL_RESOURCE_ATTRIBUTES)."""
    if raw is None:
        return {}
    out: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{name}: expected key=value pairs separated by commas, got {item!r}")
        out[key.strip()] = unquote(value.strip())
    return out
