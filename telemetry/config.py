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
from functools import partial
from typing import Any, Literal, TextIO, get_args
from urllib.parse import unquote

from telemetry.config_defaults import (
    DEFAULT_LATENCY_BUCKETS,
    DEFAULT_SENSITIVE_KEYS,
    DEFAULT_UNTRACED_SERVICES,
    LOG_LEVELS,
    PROPAGATORS,
    SAMPLERS,
)
from telemetry.redis_url import redis_url_problem

__all__ = [
    "DEFAULT_LATENCY_BUCKETS", "DEFAULT_SENSITIVE_KEYS", "DEFAULT_UNTRACED_SERVICES", "LOG_LEVELS",
    "MAX_SPAN_LIMIT", "MAX_TRACES_PER_SECOND", "PROPAGATORS", "SAMPLERS", "SPAN_LIMIT_FIELDS",
    "ClientAccessLog", "ConfigError", "LogFormat", "OtlpCompression", "OtlpProtocol",
    "TelemetryConfig", "TracesExporter",
]  # fmt: skip

OtlpProtocol = Literal["grpc", "http/protobuf"]
OtlpCompression = Literal["gzip", "none"]
TracesExporter = Literal["otlp", "console", "none"]
LogFormat = Literal["json", "console"]
ClientAccessLog = Literal["all", "errors", "off"]

_EXPORTERS: tuple[str, ...] = get_args(TracesExporter)
_PROTOCOLS: tuple[str, ...] = get_args(OtlpProtocol)
_COMPRESSIONS: tuple[str, ...] = get_args(OtlpCompression)
_LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
_CLIENT_ACCESS_LOGS: tuple[str, ...] = get_args(ClientAccessLog)


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

    # Logging. ``logs_exporter``: log records over OTLP too (the same endpoint, protocol, headers
    # and compression as spans; OTLP/HTTP posts to ``v1/logs``, or ``otlp_logs_endpoint`` as is),
    # or as OTLP JSON on stdout ("console"); the JSON lines on ``log_stream`` stay either way.
    logs_exporter: TracesExporter = "none"
    otlp_logs_endpoint: str | None = None
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

    # Exact cluster rate limits in Redis (None: split evenly across instances, as without it).
    # Kept out of repr: the URL may hold a password (``telemetry.redis_url.redact`` shows it).
    redis_url: str | None = field(default=None, repr=False)
    redis_timeout: float = 0.01  # seconds per connect/read/write; a slower Redis is "down"

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
    "span_attribute_value_length_limit", "otlp_logs_endpoint", "redis_url",
}  # fmt: skip


_Getter = Callable[[str], str | None]
"""A variable's value, stripped; None when it is unset or blank."""


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    def get(name: str) -> str | None:
        raw = env.get(name)
        return raw.strip() if raw is not None and raw.strip() != "" else None

    out: dict[str, Any] = {}
    for read in _ENVIRONMENT:
        out.update(read(get))
    return out


@dataclass(frozen=True)
class _Var:
    """One field from the environment: the first of ``names`` that is set (the traces-only variable
    before the general one, the exporter spec's precedence), parsed by ``parse(name, value)``, whose
    errors name that variable."""

    field_name: str
    names: tuple[str, ...]
    parse: Callable[[str, str], Any]

    def __call__(self, get: _Getter) -> dict[str, Any]:
        for name in self.names:
            if (raw := get(name)) is not None:
                return {self.field_name: self.parse(name, raw)}
        return {}


def _otlp(field_name: str, suffix: str, parse: Callable[[str, str], Any]) -> _Var:
    """An OTLP exporter setting: ``OTEL_EXPORTER_OTLP_TRACES_<suffix>``, else the general one."""
    names = (f"OTEL_EXPORTER_OTLP_TRACES_{suffix}", f"OTEL_EXPORTER_OTLP_{suffix}")
    return _Var(field_name, names, parse)


def _resource(get: _Getter) -> dict[str, Any]:
    """``OTEL_RESOURCE_ATTRIBUTES``, and the service's name and version when it has them."""
    resource = _parse_key_values("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES"))
    if not resource:
        return {}
    out: dict[str, Any] = {"resource_attributes": resource}
    for key, field_name in (("service.name", "service_name"), ("service.version", "service_version")):
        if key in resource:
            out[field_name] = resource[key]
    return out


def _span_limits(get: _Getter) -> dict[str, int]:
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


def _text(name: str, raw: str) -> str:
    return raw


def _one_of(allowed: tuple[str, ...], *, lower: bool = False) -> Callable[[str, str], str]:
    return lambda name, raw: _choice(name, raw.lower() if lower else raw, allowed)


def _millis(name: str, raw: str) -> float:
    """The spec's milliseconds as the seconds of the config."""
    return _parse_float(name, raw, minimum=1) / 1000.0


def _disabled(name: str, raw: str) -> bool:
    return not _parse_bool(name, raw)


def _as_is(name: str, _: str) -> bool:
    # Spec: the signal-specific URL is used as is; the general one is a base URL.
    return name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def _propagators(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    for p in names:
        _choice(name, p, PROPAGATORS)
    return names


def _port(name: str, raw: str) -> int | None:
    return None if raw.lower() == "none" else _parse_int(name, raw, 0, 65535)


def _baggage_keys(name: str, raw: str) -> tuple[str, ...] | None:
    # "*": every key (the default); "none" or empty: no baggage; else the keys to keep.
    names = tuple(k.strip() for k in raw.split(",") if k.strip())
    return None if names == ("*",) else () if names in ((), ("none",)) else names


def _sensitive_keys(name: str, raw: str) -> tuple[str, ...]:
    # Added to the defaults: names, patterns ("x-tenant-*"), or "!name" to keep one in clear.
    return DEFAULT_SENSITIVE_KEYS + tuple(k.strip().lower() for k in raw.split(",") if k.strip())


def _validate(cfg: TelemetryConfig) -> None:
    # In this order: the first problem found is the one reported.
    _check_names(cfg)
    _check_exporter(cfg)
    _check_sampler(cfg)
    _check_spans(cfg)
    _check_queues_and_metrics(cfg)
    _check_redis(cfg)


def _check_names(cfg: TelemetryConfig) -> None:
    """The service's name, and every setting that is one of a list or a list of names."""
    if not cfg.service_name or not isinstance(cfg.service_name, str):
        raise ConfigError("service_name: must be a non-empty string")
    _choice("traces_exporter", cfg.traces_exporter, _EXPORTERS)
    _choice("logs_exporter", cfg.logs_exporter, _EXPORTERS)
    _choice("otlp_protocol", cfg.otlp_protocol, _PROTOCOLS)
    _choice("otlp_compression", cfg.otlp_compression, _COMPRESSIONS)
    _choice("sampler", cfg.sampler, SAMPLERS)
    _choice("log_level", cfg.log_level, LOG_LEVELS)
    _choice("log_format", cfg.log_format, _LOG_FORMATS)
    _choice("client_access_log", cfg.client_access_log, _CLIENT_ACCESS_LOGS)
    inbound = cfg.inbound_baggage
    if inbound is not None and (
        not isinstance(inbound, tuple) or not all(isinstance(k, str) and k for k in inbound)
    ):
        raise ConfigError(f"inbound_baggage: must be None or a tuple of baggage keys, got {inbound!r}")
    for p in cfg.propagators:
        _choice("propagators", p, PROPAGATORS)


def _check_exporter(cfg: TelemetryConfig) -> None:
    for name in ("otlp_endpoint", "otlp_logs_endpoint"):
        if getattr(cfg, name) is not None:
            _parse_endpoint(name, getattr(cfg, name))
    if (cfg.otlp_client_key is None) != (cfg.otlp_client_certificate is None):
        raise ConfigError("otlp_client_key, otlp_client_certificate: give both (mTLS) or neither")


def _check_sampler(cfg: TelemetryConfig) -> None:
    """``sampler_arg``: a ratio for the ratio samplers, traces per second for the rate-limiting ones."""
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


def _check_spans(cfg: TelemetryConfig) -> None:
    """How spans are batched and exported, and what each span keeps."""
    for name in ("export_timeout", "span_schedule_delay"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{name}: must be > 0, got {getattr(cfg, name)}")
    for name in SPAN_LIMIT_FIELDS:
        value = getattr(cfg, name)
        if value is None and name == "span_attribute_value_length_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SPAN_LIMIT:
            raise ConfigError(f"{name}: must be an integer within 0..{MAX_SPAN_LIMIT}, got {value!r}")


def _check_queues_and_metrics(cfg: TelemetryConfig) -> None:
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


def _check_redis(cfg: TelemetryConfig) -> None:
    problem = None if cfg.redis_url is None else redis_url_problem(cfg.redis_url)
    if problem is not None:
        raise ConfigError(f"redis_url (TELEMETRY_REDIS_URL): {problem}")
    # Below the store's first backoff (0.5 s): a hung Redis must cost a grpc.aio loop at most a
    # fraction of each backoff period, the round trip running on the loop.
    if not (0.001 <= cfg.redis_timeout <= 0.25):
        raise ConfigError("redis_timeout (TELEMETRY_REDIS_TIMEOUT_MS): must be 1 to 250 ms")


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


# Last in the module: it names the parsers above. Read in this order: the first bad variable is
# the one reported, and a later entry setting a field wins (OTEL_SERVICE_NAME over the service.name
# of OTEL_RESOURCE_ATTRIBUTES, as the spec says).
_ENVIRONMENT: tuple[Callable[[_Getter], dict[str, Any]], ...] = (
    _resource,
    _Var("service_name", ("OTEL_SERVICE_NAME",), _text),
    _Var("tracing_enabled", ("OTEL_SDK_DISABLED",), _disabled),
    _Var("traces_exporter", ("OTEL_TRACES_EXPORTER",), _one_of(_EXPORTERS)),
    _Var("logs_exporter", ("OTEL_LOGS_EXPORTER",), _one_of(_EXPORTERS)),
    _Var("otlp_logs_endpoint", ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",), _parse_endpoint),
    _otlp("otlp_protocol", "PROTOCOL", _one_of(_PROTOCOLS)),
    _otlp("otlp_endpoint", "ENDPOINT", _parse_endpoint),
    _otlp("otlp_endpoint_as_is", "ENDPOINT", _as_is),
    _otlp("otlp_insecure", "INSECURE", _parse_bool),
    _otlp("otlp_headers", "HEADERS", _parse_key_values),
    _otlp("export_timeout", "TIMEOUT", _millis),
    _otlp("otlp_certificate", "CERTIFICATE", _text),
    _otlp("otlp_client_key", "CLIENT_KEY", _text),
    _otlp("otlp_client_certificate", "CLIENT_CERTIFICATE", _text),
    _otlp("otlp_compression", "COMPRESSION", _one_of(_COMPRESSIONS, lower=True)),
    _Var("span_queue_size", ("OTEL_BSP_MAX_QUEUE_SIZE",), partial(_parse_int, minimum=1)),
    _Var("span_batch_size", ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), partial(_parse_int, minimum=1)),
    _Var("span_schedule_delay", ("OTEL_BSP_SCHEDULE_DELAY",), _millis),
    _Var("sampler", ("OTEL_TRACES_SAMPLER",), _one_of(SAMPLERS, lower=True)),
    _Var("sampler_arg", ("OTEL_TRACES_SAMPLER_ARG",), partial(_parse_float, minimum=0)),
    _Var("propagators", ("OTEL_PROPAGATORS",), _propagators),
    _span_limits,
    _Var("log_level", ("TELEMETRY_LOG_LEVEL",), _one_of(LOG_LEVELS, lower=True)),
    _Var("log_format", ("TELEMETRY_LOG_FORMAT",), _one_of(_LOG_FORMATS, lower=True)),
    _Var(
        "client_access_log", ("TELEMETRY_CLIENT_ACCESS_LOG",), _one_of(_CLIENT_ACCESS_LOGS, lower=True)
    ),
    _Var("metrics_port", ("TELEMETRY_METRICS_PORT",), _port),
    _Var("metrics_host", ("TELEMETRY_METRICS_HOST",), _text),
    _Var("inbound_baggage", ("TELEMETRY_INBOUND_BAGGAGE",), _baggage_keys),
    _Var("sensitive_keys", ("TELEMETRY_SENSITIVE_KEYS",), _sensitive_keys),
    _Var("redis_url", ("TELEMETRY_REDIS_URL",), _text),
    _Var("redis_timeout", ("TELEMETRY_REDIS_TIMEOUT_MS",), _millis),
)
