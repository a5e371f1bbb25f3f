"""What this process sees of the registry and of etcd, read at scrape time.

* ``discovery_instances{service}``: live instances of each service in the registry;
* ``etcd_client_endpoint_info{endpoint}`` 1: the etcd member the client talks to now;
* ``etcd_client_failovers_total``: how many times the client moved to another member.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from telemetry.discovery.directory import ServiceDirectory


class DiscoveryCollector(Collector):
    def __init__(self, directory: ServiceDirectory) -> None:
        self._directory = directory

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        family = GaugeMetricFamily(
            "discovery_instances",
            "Live instances of each service in the etcd registry, as this process sees them.",
            labels=["service"],
        )
        for service, count in sorted(self._directory.counts().items()):
            family.add_metric([service], count)
        yield family
        client = self._directory.client
        endpoint = GaugeMetricFamily(
            "etcd_client_endpoint_info",
            "The etcd member (host:port) this process's etcd client calls now: always 1.",
            labels=["endpoint"],
        )
        endpoint.add_metric([client.current_endpoint], 1)
        yield endpoint
        yield CounterMetricFamily(
            "etcd_client_failovers",
            "Times the etcd client moved to another member after one failed or held a call.",
            value=client.failovers,
        )
