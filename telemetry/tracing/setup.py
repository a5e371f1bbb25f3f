"""Build a TracerProvider, exporter and propagator from a :class:`TelemetryConfig`.

Spans leave through a BatchSpanProcessor: a bounded queue (drops when full, never blocks the RPC)
drained by a background thread with a timeout on every export, so a dead collector costs nothing
on the request path.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetry.config import TelemetryConfig
from telemetry.tracing.samplers import sampler_from_name


def build_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, str] = dict(config.resource_attributes)
    attributes["service.name"] = config.service_name
    if config.service_version:
        attributes["service.version"] = config.service_version
    return Resource.create(attributes)


def build_exporter(config: TelemetryConfig) -> SpanExporter | None:
    if config.traces_exporter == "none":
        return None
    if config.traces_exporter == "console":
        return ConsoleSpanExporter()
    if config.otlp_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        endpoint = config.otlp_endpoint
        if endpoint is not None and urlsplit(endpoint).path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"  # spec: base endpoint + signal path
        return HttpExporter(endpoint=endpoint, timeout=config.export_timeout)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(
        endpoint=config.otlp_endpoint,
        insecure=config.otlp_insecure,
        timeout=config.export_timeout,
    )


def build_tracer_provider(
    config: TelemetryConfig,
    exporter: SpanExporter | None = None,
    processors: tuple[SpanProcessor, ...] = (),
) -> TracerProvider:
    """A provider for ``config``; ``exporter`` replaces the configured one (tests, benchmarks)."""
    provider = TracerProvider(
        resource=build_resource(config),
        sampler=sampler_from_name(config.sampler, config.sampler_arg),
    )
    exporter = exporter if exporter is not None else build_exporter(config)
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=config.span_queue_size,
                max_export_batch_size=config.span_batch_size,
                schedule_delay_millis=config.span_schedule_delay * 1000,
                export_timeout_millis=config.export_timeout * 1000,
            )
        )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def build_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    parts: list[TextMapPropagator] = []
    for name in names:
        if name == "tracecontext":
            parts.append(TraceContextTextMapPropagator())
        elif name == "baggage":
            parts.append(W3CBaggagePropagator())
    return CompositePropagator(parts)
