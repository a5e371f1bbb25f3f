"""The span export pipeline (:class:`~telemetry.tracing.otlp_pipeline.OtlpExportPipeline`: bounded
queue, export thread, retries as the OTLP exporter specification says) with the span encoding: one
ExportTraceServiceRequest per batch with ONE ResourceSpans for the process's resource (the OTLP data
model): RPC spans through the direct encoder (the RPC scope's ScopeSpans), spans made through the
SDK tracer through the SDK's encoder (a ScopeSpans per instrumentation scope), merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from telemetry.tracing.otlp_encoding import (
    encode_resource_header,
    encode_resource_spans,
    encode_scope,
    encode_scope_spans,
    encode_span,
    field_bytes,
    key_values,
)
from telemetry.tracing.otlp_pipeline import DEFAULT_RETRY, OtlpExportPipeline
from telemetry.tracing.otlp_transports import Transport
from telemetry.tracing.rpcspan import SCOPE

__all__ = ["DEFAULT_RETRY", "PipelineSpanProcessor", "SpanExportPipeline"]


class SpanExportPipeline(OtlpExportPipeline):
    """Spans: RPC span records and SDK spans, one ResourceSpans for the process's resource."""

    signal = "spans"
    noun = "span"

    def __init__(
        self, transport: Transport, resource_attributes: Mapping[str, Any], **options: Any
    ) -> None:
        """``options``: those of :class:`OtlpExportPipeline` (queue, batch, delays, retry)."""
        self._resource_header = encode_resource_header(resource_attributes)
        # The same Resource as the SDK encodes it: its handler spans join our ResourceSpans.
        self._resource_message = key_values(1, resource_attributes)
        self._scope = encode_scope(SCOPE.name, SCOPE.version or "")
        super().__init__(transport, thread_name="telemetry-span-export", **options)

    def _encode(self, batch: list[Any]) -> bytes:
        # RPC spans arrive as export records (tuples), SDK spans as ReadableSpans.
        # One ResourceSpans per resource, one ScopeSpans per scope (OTLP data model): the SDK's
        # ScopeSpans of our resource join the RPC scope's, and its spans of the RPC scope itself
        # join that ScopeSpans.
        rpc = [encode_span(*span) for span in batch if type(span) is tuple]
        sdk_scopes: list[bytes] = []
        others = [span for span in batch if type(span) is not tuple]
        foreign = b""
        if others:
            from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

            for resource_spans in encode_spans(others).resource_spans:
                resource = resource_spans.resource.SerializeToString()
                if resource_spans.schema_url or resource != self._resource_message:
                    foreign += field_bytes(1, resource_spans.SerializeToString())  # its own
                    continue
                for scope_spans in resource_spans.scope_spans:
                    scope = scope_spans.scope.SerializeToString()
                    if scope == self._scope and not scope_spans.schema_url:
                        rpc.extend(span.SerializeToString() for span in scope_spans.spans)
                    else:
                        sdk_scopes.append(scope_spans.SerializeToString())
        scopes = [encode_scope_spans(self._scope, rpc)] if rpc else []
        scopes += sdk_scopes
        own = encode_resource_spans(self._resource_header, scopes) if scopes else b""
        return own + foreign


class PipelineSpanProcessor(SpanProcessor):
    """Feeds spans made through the SDK tracer (handler child spans) into the same pipeline."""

    def __init__(self, pipeline: SpanExportPipeline) -> None:
        self._pipeline = pipeline

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._pipeline.add(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._pipeline.force_flush(timeout_millis / 1000)
