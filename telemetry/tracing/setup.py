"""Build the tracing pieces for a :class:`TelemetryConfig`: the export pipeline and its transport,
the RPC span tracer, an SDK TracerProvider for spans made in handler code, and the propagation.

Both tracers decide through one :class:`LiveSampler` (``Tracing.sampler``), so a sampling change
from the control plane reaches RPC spans and handler spans alike.

Both kinds of span leave through one :class:`SpanExportPipeline` (bounded, non-blocking, timed out),
so a dead collector costs nothing on the request path.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.config import TelemetryConfig
from telemetry.tracing.export import (
    GrpcTransport,
    HttpTransport,
    PipelineSpanProcessor,
    SpanExportPipeline,
    StreamTransport,
)
from telemetry.tracing.propagation import propagation_for
from telemetry.tracing.rpcspan import RpcTracer
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


def build_transport(config: TelemetryConfig) -> Any | None:
    if config.traces_exporter == "none":
        return None
    if config.traces_exporter == "console":
        return StreamTransport(sys.stdout)
    headers = dict(config.otlp_headers)
    if config.otlp_protocol == "http/protobuf":
        url = config.otlp_endpoint or "http://localhost:4318"
        if urlsplit(url).path in ("", "/"):
            url = url.rstrip("/") + "/v1/traces"  # spec: the base endpoint plus the signal path
        return HttpTransport(url, headers)
    return GrpcTransport(config.otlp_endpoint or "http://localhost:4317", config.otlp_insecure, headers)


def build_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    parts: list[TextMapPropagator] = []
    for name in names:
        if name == "tracecontext":
            parts.append(TraceContextTextMapPropagator())
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
    provider = TracerProvider(resource=resource, sampler=sampler)
    if pipeline is not None:
        provider.add_span_processor(PipelineSpanProcessor(pipeline))
    for processor in extra:
        provider.add_span_processor(processor)
    propagator = build_propagator(config.propagators)
    return Tracing(
        provider=provider,
        rpc_tracer=RpcTracer(sampler, resource, pipeline, extra),
        pipeline=pipeline,
        propagator=propagator,
        propagation=propagation_for(config.propagators, propagator, config.inbound_baggage),
        sampler=sampler,
    )
