"""``discovery_instances{service}``: what this process sees in the registry, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from telemetry.discovery.directory import ServiceDirectory


class DiscoveryCollector(Collector):
    def __init__(self, directory: ServiceDirectory) -> None:
        self._directory = directory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "discovery_instances",
            "Live instances of each service in the etcd registry, as this process sees them.",
            labels=["service"],
        )
        for service, count in sorted(self._directory.counts().items()):
            family.add_metric([service], count)
        yield family
