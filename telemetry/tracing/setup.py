"""Build the tracing pieces for a :class:`TelemetryConfig`: the export pipeline and its transport,
the RPC span tracer, an SDK TracerProvider for spans made in handler code, and the propagation
(W3C Trace Context by :mod:`telemetry.tracing.w3c`'s rules on every path: gRPC metadata, ASGI, and
the global ``TextMapPropagator`` that :func:`telemetry.init` installs).

Both tracers decide through one :class:`LiveSampler` (``Tracing.sampler``), so a sampling change
from the control plane reaches RPC spans and handler spans alike.

Both kinds of span leave through one :class:`SpanExportPipeline` (bounded, non-blocking, timed out),
so a dead collector costs nothing on the request path.
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from telemetry.config import ConfigError, TelemetryConfig
from telemetry.tracing.export import PipelineSpanProcessor, SpanExportPipeline
from telemetry.tracing.otlp_transports import (
    LOGS_METHOD,
    TRACES_METHOD,
    GrpcTransport,
    HttpTransport,
    StreamTransport,
    TlsFiles,
    Transport,
)
from telemetry.tracing.propagation import W3CTraceContextPropagator, propagation_for
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.samplers import LiveSampler, sampler_from_name


@dataclass(frozen=True)
class Tracing:
    provider: TracerProvider
    rpc_tracer: RpcTracer
    pipeline: SpanExportPipeline | None
    propagator: TextMapPropagator
    propagation: Any  # W3CPropagation or GenericPropagation
    sampler: LiveSampler  # the configured sampler, swappable at run time (LiveRules does)

    def force_flush(self, timeout: float) -> bool:
        ok = self.pipeline.force_flush(timeout) if self.pipeline is not None else True
        return self.provider.force_flush(int(timeout * 1000)) and ok

    def shutdown(self, timeout: float) -> None:
        if self.pipeline is not None:
            self.pipeline.shutdown(timeout)
        self.provider.shutdown()


def build_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, str] = dict(config.resource_attributes)
    attributes["service.name"] = config.service_name
    if config.service_version:
        attributes["service.version"] = config.service_version
    return Resource.create(attributes)


def otlp_http_url(endpoint: str | None, as_is: bool = False, signal: str = "traces") -> str:
    """The URL OTLP/HTTP posts ``signal`` (``traces``, ``logs``) to (exporter spec, "Endpoint URLs
    for OTLP/HTTP"): a base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``) ALWAYS gets ``v1/<signal>``
    appended to its path, with one ``/`` between (``http://h:4318/prefix`` ->
    ``http://h:4318/prefix/v1/traces``); the signal-specific one
    (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``as_is``) is used as it is, a URL without a path
    getting the root path ``/``. Default: ``http://localhost:4318/v1/<signal>``."""
    if endpoint is None:
        return f"http://localhost:4318/v1/{signal}"
    url = urlsplit(endpoint)
    path = (url.path or "/") if as_is else url.path.rstrip("/") + f"/v1/{signal}"
    return urlunsplit(url._replace(path=path))


def build_transport(config: TelemetryConfig, signal: str = "traces") -> Transport | None:
    """The transport of ``signal`` (``traces`` or ``logs``): its exporter setting chooses OTLP, the
    console or none; OTLP's endpoint, protocol, headers, compression and TLS files are shared, and
    a signal-specific endpoint (``otlp_logs_endpoint`` for logs) is used as is."""
    exporter = config.logs_exporter if signal == "logs" else config.traces_exporter
    if exporter == "none":
        return None
    if exporter == "console":
        return StreamTransport(sys.stdout, logs=signal == "logs")
    headers = dict(config.otlp_headers)
    compression = config.otlp_compression
    tls = tls_files(config)
    endpoint, as_is = config.otlp_endpoint, config.otlp_endpoint_as_is
    if signal == "logs":
        # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the traces' own: logs use the base endpoint then.
        own = config.otlp_logs_endpoint
        endpoint, as_is = (own, True) if own is not None else (None if as_is else endpoint, False)
    if config.otlp_protocol == "http/protobuf":
        url = otlp_http_url(endpoint, as_is, signal)
        return HttpTransport(url, headers, compression=compression, tls=tls)
    method = LOGS_METHOD if signal == "logs" else TRACES_METHOD
    return GrpcTransport(endpoint or "http://localhost:4317", config.otlp_insecure, headers,
                         compression=compression, tls=tls, method=method)  # fmt: skip


def tls_files(config: TelemetryConfig) -> TlsFiles:
    """The exporter's PEM files, read now: a missing or unreadable one is a ConfigError naming
    the setting, at start, rather than every export failing later."""
    contents: dict[str, bytes | None] = {}
    for name in ("otlp_certificate", "otlp_client_key", "otlp_client_certificate"):
        path = getattr(config, name)
        try:
            contents[name] = None if path is None else Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    files = TlsFiles(
        certificate=contents["otlp_certificate"],
        client_key=contents["otlp_client_key"],
        client_certificate=contents["otlp_client_certificate"],
    )
    if files.certificate is not None and b"-----BEGIN CERTIFICATE-----" not in files.certificate:
        raise ConfigError(f"otlp_certificate: no PEM certificate in {config.otlp_certificate!r}")
    try:  # the same checks OpenSSL makes at the first export, now (gRPC reads the same files)
        _ = files.ssl_context
    except ssl.SSLError as exc:
        names = "otlp_client_key, otlp_client_certificate" if files.client_key else "otlp_certificate"
        raise ConfigError(f"{names}: {exc.reason or exc} (an encrypted key is not supported)") from None
    return files


def build_span_limits(config: TelemetryConfig) -> SpanLimits:
    """The span limits of both kinds of span: the SDK ``TracerProvider`` (handler spans) and the RPC
    tracer get this one object. Every value is explicit, so the SDK reads no variable itself. The
    one value length limit covers event and link attributes too (the SDK applies only the general
    limit to those: with ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` alone, a stack trace in an
    exception event would stay whole)."""
    length = config.span_attribute_value_length_limit
    return SpanLimits(
        max_attributes=config.span_attribute_count_limit,
        max_events=config.span_event_count_limit,
        max_links=config.span_link_count_limit,
        max_span_attributes=config.span_attribute_count_limit,
        max_event_attributes=config.event_attribute_count_limit,
        max_link_attributes=config.link_attribute_count_limit,
        max_attribute_length=SpanLimits.UNSET if length is None else length,
        max_span_attribute_length=SpanLimits.UNSET if length is None else length,
    )


def build_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    """The handle's ``TextMapPropagator`` (ASGI, and global once :func:`telemetry.init` installs it):
    ``tracecontext`` is :class:`W3CTraceContextPropagator`, W3C Trace Context to the letter, in place
    of the SDK's ``TraceContextTextMapPropagator``; ``baggage`` the SDK's W3C baggage codec."""
    parts: list[TextMapPropagator] = []
    for name in names:
        if name == "tracecontext":
            parts.append(W3CTraceContextPropagator())
        elif name == "baggage":
            parts.append(W3CBaggagePropagator())
    return CompositePropagator(parts)


def build_tracing(
    config: TelemetryConfig,
    span_exporter: SpanExporter | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
) -> Tracing:
    """``span_exporter`` replaces the configured export (tests, custom backends)."""
    resource = build_resource(config)
    sampler = LiveSampler(
        sampler_from_name(config.sampler, config.sampler_arg),
        follows_parent_else_samples=config.sampler == "parentbased_always_on",
        samples_all=config.sampler == "always_on",
    )
    extra = list(span_processors)
    pipeline = None
    if span_exporter is not None:
        extra.append(
            BatchSpanProcessor(
                span_exporter,
                max_queue_size=config.span_queue_size,
                max_export_batch_size=config.span_batch_size,
                schedule_delay_millis=config.span_schedule_delay * 1000,
                export_timeout_millis=config.export_timeout * 1000,
            )
        )
    else:
        transport = build_transport(config)
        if transport is not None:
            pipeline = SpanExportPipeline(
                transport,
                dict(resource.attributes),
                queue_size=config.span_queue_size,
                batch_size=config.span_batch_size,
                schedule_delay=config.span_schedule_delay,
                export_timeout=config.export_timeout,
            )
    limits = build_span_limits(config)
    provider = TracerProvider(resource=resource, sampler=sampler, span_limits=limits)
    if pipeline is not None:
        provider.add_span_processor(PipelineSpanProcessor(pipeline))
    for processor in extra:
        provider.add_span_processor(processor)
    propagator = build_propagator(config.propagators)
    return Tracing(
        provider=provider,
        rpc_tracer=RpcTracer(sampler, resource, pipeline, extra, limits),
        pipeline=pipeline,
        propagator=propagator,
        propagation=propagation_for(config.propagators, propagator, config.inbound_baggage),
        sampler=sampler,
    )
