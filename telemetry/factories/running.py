"""What :meth:`Telemetry.start() <telemetry.handle.Telemetry.start>` does: everything of a handle
that starts a thread, opens a socket or talks to etcd -- the span export pipeline, the ``/metrics``
endpoint, discovery and live rules -- plus the collectors that report on them; and
:meth:`Running.close`, which undoes it, each step bounded so a dead collector cannot hang exit."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, ProcessCollector

from telemetry.asgi import http_duration_histogram
from telemetry.config import TelemetryConfig
from telemetry.control.faults import FaultInjector
from telemetry.control.live_rules import LiveRules
from telemetry.control.metrics import ControlCollector
from telemetry.discovery.etcd import EtcdConfig
from telemetry.discovery.metrics import DiscoveryCollector
from telemetry.discovery.node import Discovery
from telemetry.governance.cluster_metrics import ClusterLimitCollector
from telemetry.governance.engine import Governance
from telemetry.metrics.exposition import MetricsServer, serve_metrics
from telemetry.metrics.rpc import SideMetrics
from telemetry.metrics.runtime import SelfMonitoringCollector
from telemetry.tracing.rpcspan import SCOPE
from telemetry.tracing.setup import Tracing, build_tracing

__all__ = ["Running", "StartPlan", "bounded", "start"]

_log = logging.getLogger("telemetry")


@dataclass(frozen=True)
class StartPlan:
    """What a handle was built with that only ``start()`` uses."""

    span_exporter: SpanExporter | None = None
    span_processors: tuple[SpanProcessor, ...] = ()
    etcd: EtcdConfig | None = None
    instance_id: str | None = None
    discovery_cache: str | None = None


@dataclass
class Running:
    """A started handle's live parts; ``collectors`` are the ones it registered in ``registry``."""

    registry: CollectorRegistry
    tracing: Tracing | None = None
    # With tracing disabled (OTEL_SDK_DISABLED) user code still gets a tracer: a no-op one.
    tracer: trace.Tracer = field(default_factory=trace.NoOpTracer)
    metrics_server: MetricsServer | None = None
    discovery: Discovery | None = None
    live_rules: LiveRules | None = None
    collectors: list[Any] = field(default_factory=list)
    _http: Histogram | None = None

    def register(self, collector: Any) -> None:
        self.registry.register(collector)
        self.collectors.append(collector)

    def http_histogram(self, buckets: tuple[float, ...]) -> Histogram:
        """The ASGI duration histogram, registered on first use (HTTP is not every service's)."""
        if self._http is None:
            self._http = http_duration_histogram(buckets)
            self.register(self._http)
        return self._http

    def close(self, timeout: float) -> None:
        """Deregister and let etcd go first (clients stop picking this instance), then flush."""
        if self.discovery is not None:
            bounded(self.discovery.close, timeout)
        tracing = self.tracing
        if tracing is not None:
            bounded(lambda: tracing.shutdown(timeout), timeout + 1)
        if self.metrics_server is not None:
            self.metrics_server.close()
        for collector in self.collectors:
            with contextlib.suppress(KeyError):
                self.registry.unregister(collector)


def start(
    config: TelemetryConfig,
    plan: StartPlan,
    *,
    registry: CollectorRegistry,
    governance: Governance | None,
    metrics: tuple[SideMetrics, SideMetrics] | None,
    faults: FaultInjector,
) -> Running:
    """Start a handle's parts; if one fails, those already started are closed again."""
    running = Running(registry)
    if config.tracing_enabled:
        tracing = running.tracing = build_tracing(config, plan.span_exporter, plan.span_processors)
        # The scope of the RPC spans: the package's name and version (an empty version is what
        # OTLP receivers show as "unknown").
        running.tracer = tracing.provider.get_tracer(SCOPE.name, SCOPE.version)
    try:
        if governance is not None:
            governance.take_process_settings()  # built without touching the process; now it may
        if metrics is not None:
            _register_metrics(running, metrics, governance)
        if plan.etcd is not None:
            _start_etcd(running, config, plan.etcd, plan, governance, faults)
        if config.metrics_enabled and config.metrics_port is not None:
            running.metrics_server = serve_metrics(registry, config.metrics_host, config.metrics_port)
    except BaseException:
        running.close(timeout=1.0)
        raise
    return running


def _register_metrics(
    running: Running, metrics: tuple[SideMetrics, SideMetrics], governance: Governance | None
) -> None:
    for side in metrics:
        running.register(side)
    if running.registry is not REGISTRY:  # the global one already has process metrics
        running.register(ProcessCollector(registry=None))
    tracing = running.tracing
    running.register(SelfMonitoringCollector(tracing.pipeline if tracing is not None else None))
    if governance is not None:
        running.register(governance.collector())
        if governance.cluster_store is not None:
            running.register(ClusterLimitCollector(governance.cluster_store, governance.rate_limiters))


def _start_etcd(
    running: Running,
    config: TelemetryConfig,
    etcd: EtcdConfig,
    plan: StartPlan,
    governance: Governance | None,
    faults: FaultInjector,
) -> None:
    """Discovery, and live rules when there is governance; nothing here waits for etcd to be up."""
    discovery = running.discovery = Discovery(
        etcd,
        service=config.service_name,
        instance_id=plan.instance_id,
        cache_file=plan.discovery_cache,
    )
    if config.metrics_enabled:
        running.register(DiscoveryCollector(discovery.directory))
    if governance is None:
        return
    tracing = running.tracing
    live = LiveRules(
        discovery.client,
        governance,
        service=config.service_name,
        instance_id=discovery.instance_id,
        faults=faults,
        sampler=tracing.sampler if tracing is not None else None,
        instance_count=discovery.instance_count,
    )
    if config.metrics_enabled:
        running.register(ControlCollector(live))
    discovery.directory.add_listener(live.refresh)  # cluster limits follow the instance count
    discovery.on_close(live.stop)  # before etcd is let go
    running.live_rules = live.start()


def bounded(fn: Callable[[], Any], timeout: float) -> None:
    """Run ``fn`` but give up waiting after ``timeout``: a dead collector must not hang exit."""
    worker = threading.Thread(target=fn, name="telemetry-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _log.warning("telemetry shutdown did not finish within %.1fs; giving up on it", timeout)
