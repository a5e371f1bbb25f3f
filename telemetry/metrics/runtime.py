"""Metrics about telemetry itself: what it had to drop to keep RPCs fast."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from telemetry.logging.pipeline import PIPELINE


class SelfMonitoringCollector(Collector):
    """``telemetry_log_lines_dropped_total``, ``telemetry_spans_dropped_total`` (queue full),
    ``telemetry_spans_export_failed_total`` (collector unreachable or refusing) and
    ``telemetry_spans_export_rejected_total`` (refused in an OTLP partial success)."""

    def __init__(self, span_pipeline: Any | None) -> None:
        self._spans = span_pipeline

    def collect(self) -> Iterator[CounterMetricFamily]:
        writer = PIPELINE.writer
        yield CounterMetricFamily(
            "telemetry_log_lines_dropped",
            "Log lines dropped because the output stream could not keep up.",
            value=writer.dropped if writer is not None else 0,
        )
        if self._spans is not None:
            yield CounterMetricFamily(
                "telemetry_spans_dropped",
                "Spans dropped because the export queue was full.",
                value=self._spans.dropped,
            )
            yield CounterMetricFamily(
                "telemetry_spans_export_failed",
                "Spans lost because their export batch failed.",
                value=self._spans.failed,
            )
            yield CounterMetricFamily(
                "telemetry_spans_export_rejected",
                "Spans the collector rejected in an OTLP partial success.",
                value=self._spans.rejected,
            )
