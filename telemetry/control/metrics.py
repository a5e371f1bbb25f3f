"""``governance_control_revision``: the etcd revision of the control state (rules, faults,
sampling) an instance last took in, and ``governance_control_rejected``: 1 while the last change
was refused. A step in the revision marks a change from the panel, so dashboards can annotate it."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from telemetry.control.live_rules import LiveRules

__all__ = ["ControlCollector"]


class ControlCollector(Collector):
    def __init__(self, live: LiveRules) -> None:
        self._live = live

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self._live.status
        if status is None:  # not read from etcd yet
            return
        yield GaugeMetricFamily(
            "governance_control_revision",
            "etcd revision of the control state (rules, faults, sampling) last taken in.",
            value=float(status["revision"]),
        )
        yield GaugeMetricFamily(
            "governance_control_rejected",
            "1 while the last control change was refused (the previous state stays in force).",
            value=1.0 if status["state"] != "applied" else 0.0,
        )
