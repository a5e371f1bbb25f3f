"""The RPC tracer: starts :class:`~telemetry.tracing.rpcspan.RpcSpan` s under the sampler in force
(a :class:`~telemetry.tracing.samplers.LiveSampler`: the control plane may swap it at any time) and
hands ended ones to the export pipeline and the SDK span processors.

:meth:`RpcTracer.start` is on every RPC's path: while the configured sampler is the default it
decides inline, and every span starts without checking the span limits while they leave room for
an RPC span's own attributes (:mod:`telemetry.tracing.limits`).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from telemetry.tracing.limits import DEFAULT_LIMITS, OWN_ATTRIBUTES, OWN_VALUE_LENGTH, truncated
from telemetry.tracing.otlp_encoding import SpanRecord, SpanTemplate
from telemetry.tracing.rpcspan import RpcSpan
from telemetry.tracing.samplers import LiveSampler
from telemetry.tracing.spancontext import (
    EMPTY_TRACE_STATE,
    IS_VALID,
    TRACE_FLAGS,
    TRACE_ID,
    TRACE_STATE,
)

_new_tuple = tuple.__new__
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_EMPTY_CONTEXT = Context()
_MAX_TEMPLATES = 10_000  # per-tracer caches of templates stripped of their attributes


class RpcTracer:
    """Starts :class:`RpcSpan` s under the sampler in force and hands ended ones on.

    ``sampler``: the :class:`LiveSampler` in force (it knows whether the fast path applies).
    ``limits``: the span limits, the SDK's object (give the SDK ``TracerProvider`` the same one).
    """

    def __init__(
        self,
        sampler: LiveSampler,
        resource: Resource,
        export: Any | None,
        processors: Sequence[SpanProcessor] = (),
        limits: SpanLimits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits
        # The span attribute limits, read by every set_attribute.
        self.attribute_count: int | None = limits.max_span_attributes
        self.value_length: int | None = limits.max_span_attribute_length
        self._bare: dict[SpanTemplate, SpanTemplate] = {}
        count, length = self.attribute_count, self.value_length
        if (count is not None and count < OWN_ATTRIBUTES) or (
            length is not None and length < OWN_VALUE_LENGTH
        ):
            # Limits tighter than an RPC span's own attributes: every span is bounded as it
            # starts (rarely configured; the usual start stays free of checks).
            self.start = self._start_bounded  # type: ignore[method-assign]
        # While the configured sampler is parentbased_always_on (the default) or always_on,
        # start() decides inline: follow the parent, else sample; or sample all. The flag is read
        # per call, so a live swap reaches it; samples_all belongs to the configured sampler.
        self._live = sampler
        self._samples_all = sampler.samples_all
        # A caller that read reads_parent_context just before a swap ended the fast path may pass
        # a context without the parent; only then can a context need repairing.
        self._repair_parent = sampler.may_use_fast_path
        self._resource = resource
        self._export = export  # SpanExportPipeline, or None
        self._processors = tuple(processors)
        self._getrandbits = random.getrandbits
        # Where an ended span's export record goes when nothing else wants the span (no SDK
        # processors): the export queue's put, which RpcSpan calls itself, one call instead of
        # on_end's three. None: spans end through :meth:`on_end`.
        self.put_record: Callable[[SpanRecord], None] | None = (
            export.add if export is not None and not self._processors else None
        )

    @property
    def reads_parent_context(self) -> bool:
        """Whether :meth:`start` passes ``parent_context`` to a sampler (else it may be bare)."""
        return not self._live.fast_path

    @property
    def sampler(self) -> LiveSampler:
        return self._live

    def template(self, name: str, kind: str, attributes: Mapping[str, Any]) -> SpanTemplate:
        """A method's :class:`SpanTemplate`, its values within the value length limit (a long
        method name or target would exceed one; counts are bounded per span)."""
        length = self.limits.max_span_attribute_length
        if length is not None:
            attributes = {key: truncated(value, length) for key, value in attributes.items()}
        return SpanTemplate(name, kind, attributes)

    def bare(self, template: SpanTemplate) -> SpanTemplate:
        """``template`` without attributes (cached), for spans that carry them as their own."""
        bare = self._bare.get(template)
        if bare is None:
            if len(self._bare) >= _MAX_TEMPLATES:
                self._bare.clear()
            bare = self._bare[template] = SpanTemplate(template.name, template.kind, {})
        return bare

    def _start_bounded(
        self,
        template: SpanTemplate,
        parent: SpanContext | None,
        parent_context: Context | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Span:
        """:meth:`start` under limits tighter than an RPC span's own attributes."""
        span = RpcTracer.start(self, template, parent, parent_context, kind, attributes)
        if type(span) is RpcSpan:
            span.bound_initial()
        return span

    def start(
        self,
        template: SpanTemplate,
        parent: SpanContext | None,
        parent_context: Context | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None = None,
    ) -> trace.Span:
        """A new span under ``parent`` (None: a new trace). ``parent_context`` is for the sampler;
        ``attributes`` (copied) are the span's first own attributes, beyond the template's."""
        getrandbits = self._getrandbits
        if parent is not None and parent[IS_VALID]:
            trace_id = parent[TRACE_ID]
        else:
            parent = None
            trace_id = getrandbits(128) or _nonzero(128)
        span_id = getrandbits(64) or _nonzero(64)
        if self._live.fast_path:
            if parent is None or self._samples_all or parent[TRACE_FLAGS] & TraceFlags.SAMPLED:
                state = parent[TRACE_STATE] if parent is not None else EMPTY_TRACE_STATE
                # valid_span_context(...), inline: it runs for every span
                context = _new_tuple(SpanContext, (trace_id, span_id, False, _SAMPLED, state, True))
                own = attributes.copy() if attributes else None
                return RpcSpan(self, template, context, parent, own)
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, parent[TRACE_STATE])
            )
        for_sampler = parent_context if parent_context is not None else _EMPTY_CONTEXT
        if parent is not None and self._repair_parent:
            for_sampler = _with_parent(for_sampler, parent)
        result = self._live.current.should_sample(  # current, not the wrapper: one call less
            for_sampler,
            trace_id,
            template.name,
            kind,
            template.attributes,
        )
        if result.decision is not Decision.RECORD_AND_SAMPLE:  # RECORD_ONLY spans are not kept
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, _NOT_SAMPLED, result.trace_state)
            )
        context = SpanContext(trace_id, span_id, False, _SAMPLED, result.trace_state)
        extra = result.attributes
        own = {k: v for k, v in extra.items() if k not in template.attributes} if extra else {}
        if attributes:
            own.update(attributes)
        span = RpcSpan(self, template, context, parent, own or None)
        if extra and self._may_exceed(template, own):  # a sampler's: any number, any length
            span.bound_initial()
        return span

    def _may_exceed(self, template: SpanTemplate, own: dict[str, Any]) -> bool:
        """Whether a span starting with these attributes could exceed the limits before it ends
        (the status code and error.type still to come), so it must be bounded from its start."""
        count = self.attribute_count
        if count is not None and len(template.attributes) + len(own) + 2 > count:
            return True
        length = self.value_length
        return length is not None and any(truncated(v, length) is not v for v in own.values())

    def on_end(self, span: RpcSpan) -> None:
        if self._export is not None:
            self._export.add(span.export_record())
        if self._processors:
            readable = span.to_readable(self._resource)
            for processor in self._processors:
                with contextlib.suppress(Exception):  # a user processor must not fail the RPC
                    processor.on_end(readable)


def _nonzero(bits: int) -> int:
    """A random id that is not the invalid id 0 (as the SDK's generator: draw again)."""
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


def _with_parent(context: Context, parent: SpanContext) -> Context:
    """``context`` with ``parent`` as its span (where parent-based samplers look for it)."""
    if trace.get_current_span(context).get_span_context() is parent:
        return context
    return trace.set_span_in_context(NonRecordingSpan(parent), context)
