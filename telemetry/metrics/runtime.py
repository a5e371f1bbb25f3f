"""Metrics about telemetry itself: what it had to drop to keep RPCs fast."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from telemetry.logging.pipeline import PIPELINE


class LogDropsCollector(Collector):
    """``telemetry_log_lines_dropped_total``: lines dropped because the log stream was too slow."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        writer = PIPELINE.writer
        yield CounterMetricFamily(
            "telemetry_log_lines_dropped",
            "Log lines dropped because the output stream could not keep up.",
            value=writer.dropped if writer is not None else 0,
        )
