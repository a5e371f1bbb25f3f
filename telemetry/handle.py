"""The :class:`Telemetry` handle: tracing, metrics and logging for one service, and the interceptors,
servers and channels built from them (by :mod:`telemetry.factories`).

Building a handle checks and keeps its configuration, and nothing more: no socket, thread or etcd
connection. :meth:`Telemetry.start` does that I/O, called explicitly or by the first use -- a server,
channel, interceptor or concern chain, ``serve``, ``register``, ``asgi``, or reading a live part
(``tracer``, ``tracing``, ``discovery``, ``live_rules``, ``metrics_server``). :func:`telemetry.init`
builds and starts one, and installs it process-wide (:mod:`telemetry.process`).

Several handles can live in one process (tests run three services in one); each has its own tracer
provider and metric registry, while logging is process-wide and tells services apart per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeAlias

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from telemetry import lifecycle
from telemetry.asgi import DEFAULT_TIMEOUT_HEADER, UNTRACED_PATHS, AsgiTelemetry
from telemetry.config import ConfigError, TelemetryConfig
from telemetry.control.faults import FaultInjector
from telemetry.control.live_rules import LiveRules
from telemetry.discovery.aio_service_channel import AioServiceChannel
from telemetry.discovery.etcd import EtcdConfig
from telemetry.discovery.node import Discovery, etcd_config
from telemetry.discovery.registry import Registration
from telemetry.discovery.service_channel import ServiceChannel
from telemetry.factories.parts import Parts, start_parts
from telemetry.factories.running import StartPlan, bounded
from telemetry.factories.servers import build_aio_server, build_server
from telemetry.governance.cluster_limit import ClusterStore
from telemetry.governance.engine import Governance
from telemetry.governance.loading import RulesInput
from telemetry.logging import pipeline as log_pipeline
from telemetry.metrics.exposition import MetricsServer
from telemetry.metrics.rpc import SideMetrics
from telemetry.redis_url import redact
from telemetry.rpc.aio_client import AioClientInterceptor
from telemetry.rpc.aio_server import AioServerInterceptor
from telemetry.rpc.client import ClientInterceptor
from telemetry.rpc.concern import Concern
from telemetry.rpc.server import ServerInterceptor
from telemetry.tracing.setup import Tracing, build_propagator, tls_files

__all__ = ["Telemetry"]


def _cluster_store(config: TelemetryConfig) -> ClusterStore | None:
    """Exact cluster limits in the Redis of ``TELEMETRY_REDIS_URL`` (None: split evenly). Opens
    nothing: the client connects on the first decision."""
    if config.redis_url is None:
        return None
    from telemetry.governance.redis_bucket import redis_cluster_store

    return redis_cluster_store(
        config.redis_url.strip(), service=config.service_name, timeout=config.redis_timeout,
        describe=redact(config.redis_url),
    )  # fmt: skip


Options: TypeAlias = Sequence[tuple[str, Any]]


class Telemetry:
    """Observability for one service. Prefer :func:`telemetry.init`; build directly in tests."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        registry: CollectorRegistry | None = None,
        span_exporter: SpanExporter | None = None,
        span_processors: Sequence[SpanProcessor] = (),
        governance: Governance | RulesInput | None = None,
        etcd: EtcdConfig | str | Sequence[str] | None = None,
        instance_id: str | None = None,
        discovery_cache: str | None = None,
    ) -> None:
        self.config = config
        # Governance joins the chains only when asked for, so plain telemetry pays nothing for it.
        store = self._cluster_store = _cluster_store(config) if governance is not None else None
        self.governance: Governance | None = (
            governance
            if isinstance(governance, Governance) or governance is None
            # bad rules fail here, at build
            else Governance(governance, process_settings=False, cluster_store=store)
        )
        if isinstance(governance, Governance) and governance.cluster_store is None:
            governance.cluster_store = store  # before its first call builds a limiter
        self.registry = registry if registry is not None else CollectorRegistry()
        self.propagator = build_propagator(config.propagators)
        self._metrics: tuple[SideMetrics, SideMetrics] | None = None
        if config.metrics_enabled:
            buckets, cap = config.latency_buckets, config.max_method_labels
            self._metrics = (SideMetrics("server", buckets, cap), SideMetrics("client", buckets, cap))
        self.server_metrics: SideMetrics | None = self._metrics[0] if self._metrics else None
        self.client_metrics: SideMetrics | None = self._metrics[1] if self._metrics else None
        # Fault-injection knobs (latency, errors, CPU burn) driven by live rules, for demos and
        # drills; free while none are set.
        self.faults = FaultInjector()
        if config.tracing_enabled and span_exporter is None and config.traces_exporter == "otlp":
            tls_files(config)  # an unreadable certificate fails at build, naming the setting
        self._plan = StartPlan(
            span_exporter=span_exporter,
            span_processors=tuple(span_processors),
            etcd=etcd_config(etcd) if etcd is not None else None,
            instance_id=instance_id,
            discovery_cache=discovery_cache,
        )
        self._state_lock = threading.Lock()
        self._started: Parts | None = None
        self._is_shut_down = False

    def start(self) -> Telemetry:
        """Start span export, the metrics endpoint, etcd discovery and live rules. Idempotent."""
        self._parts()
        return self

    def _parts(self) -> Parts:
        parts = self._started
        if parts is not None:
            return parts
        with self._state_lock:  # two threads making the first server and channel start once
            if self._started is None:
                if self._is_shut_down:
                    raise RuntimeError("this Telemetry handle was shut down before it started")
                self._started = start_parts(self.config, self._plan, registry=self.registry,
                                            governance=self.governance, metrics=self._metrics,
                                            faults=self.faults)  # fmt: skip
            return self._started

    # -- live parts: reading one starts the handle ----------------------------------------------

    @property
    def tracing(self) -> Tracing | None:
        return self._parts().running.tracing

    @property
    def tracer(self) -> trace.Tracer:
        """For spans in handler code (a no-op tracer with tracing disabled)."""
        return self._parts().running.tracer

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The SDK provider for spans made in handler code (None with tracing disabled)."""
        tracing = self.tracing
        return tracing.provider if tracing is not None else None

    @property
    def discovery(self) -> Discovery | None:
        return self._parts().running.discovery

    @property
    def live_rules(self) -> LiveRules | None:
        return self._parts().running.live_rules

    @property
    def metrics_server(self) -> MetricsServer | None:
        return self._parts().running.metrics_server

    @property
    def metrics_url(self) -> str | None:
        server = self.metrics_server
        return server.url if server is not None else None

    # -- concerns and interceptors (see telemetry.factories.chains) ------------------------------

    def server_concerns(
        self, *, tracing: bool = True, metrics: bool = True, logging: bool = True,
        deadlines: bool = True, governance: bool = True, aio: bool = False,
    ) -> list[Concern]:  # fmt: skip
        """The server chain, in order: tracing, access log, metrics, deadline, governance (when
        the handle has it). ``aio``: for a grpc.aio server (governance never blocks its loop)."""
        return self._parts().chains.server(
            tracing=tracing, metrics=metrics, logging=logging, deadlines=deadlines,
            governance=governance, aio=aio,
        )  # fmt: skip

    def client_concerns(
        self, target: str = "", *, tracing: bool = True, metrics: bool = True, logging: bool = True,
        deadlines: bool = True, governance: bool = True,
        channel: Callable[[], grpc.Channel] | None = None, retries: bool = True,
    ) -> list[Concern]:  # fmt: skip
        """The client chain, in order: tracing, access log, metrics, deadline, governance (when
        the handle has it). ``channel`` makes a channel to ``target`` for deferred calls;
        ``retries`` False leaves retrying to the caller (a balanced channel's instances)."""
        return self._parts().chains.client(
            target, tracing=tracing, metrics=metrics, logging=logging, deadlines=deadlines,
            governance=governance, channel=channel, retries=retries,
        )  # fmt: skip

    def server_interceptor(self, **select: bool) -> ServerInterceptor:
        """Sync server interceptor; pass e.g. ``metrics=False`` to leave a concern out."""
        return ServerInterceptor(self.server_concerns(**select))

    def aio_server_interceptor(self, **select: bool) -> AioServerInterceptor:
        return AioServerInterceptor(self.server_concerns(aio=True, **select))

    def client_interceptor(
        self, target: str = "", *, channel: Callable[[], grpc.Channel] | None = None, **select: bool
    ) -> ClientInterceptor:
        return ClientInterceptor(self.client_concerns(target, channel=channel, **select), target)

    def aio_client_interceptors(
        self, target: str = "", *, channel: Callable[[], grpc.Channel] | None = None, **select: bool
    ) -> list[Any]:
        """For ``grpc.aio.*_channel(interceptors=...)``: one per RPC kind (grpc.aio needs that)."""
        concerns = self.client_concerns(target, channel=channel, **select)
        return AioClientInterceptor(concerns, target).split()

    # -- shortcuts: fully instrumented servers and channels --------------------------------------

    def server(
        self, *, max_workers: int = 16, interceptors: Sequence[Any] = (), options: Options = (),
        maximum_concurrent_rpcs: int | None = None, **select: bool,
    ) -> grpc.Server:  # fmt: skip
        """A sync ``grpc.Server`` whose registered handlers are wrapped with the concern chain;
        ``interceptors`` run before the chain, ``select`` leaves concerns out (``metrics=False``).
        With governance, the adaptive limiter also refuses in grpc's poller thread
        (telemetry.rpc.admission), within ``maximum_concurrent_rpcs`` if given."""
        governance = self.governance if select.get("governance", True) else None
        return build_server(self.server_interceptor(**select), governance, max_workers=max_workers,
                            interceptors=interceptors, options=options,
                            maximum_concurrent_rpcs=maximum_concurrent_rpcs)  # fmt: skip

    def aio_server(
        self, *, interceptors: Sequence[Any] = (), options: Options = (),
        maximum_concurrent_rpcs: int | None = None, **select: bool,
    ) -> grpc.aio.Server:  # fmt: skip
        return build_aio_server(
            self.aio_server_interceptor(**select), interceptors=interceptors, options=options,
            maximum_concurrent_rpcs=maximum_concurrent_rpcs,
        )  # fmt: skip

    def channel(
        self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
        options: Options = (), interceptors: Sequence[Any] = (), **select: bool,
    ) -> grpc.Channel:  # fmt: skip
        """A sync channel (TLS when ``credentials`` are given); telemetry runs first, then
        ``interceptors``. Calls skip grpc's interceptor machinery (see telemetry.rpc.channel).
        With etcd configured, a bare service name (no ``:``) gives a :meth:`service_channel`.
        ``select`` leaves concerns out (``metrics=False`` ...); ``retries=False`` leaves retrying
        failed calls to the caller (a balanced channel makes its instances' channels so)."""
        return self._parts().channels.channel(target, credentials=credentials, options=options,
                                              interceptors=interceptors, **select)  # fmt: skip

    def aio_channel(
        self, target: str, *, credentials: grpc.ChannelCredentials | None = None,
        options: Options = (), interceptors: Sequence[Any] = (), **select: bool,
    ) -> grpc.aio.Channel:  # fmt: skip
        return self._parts().channels.aio_channel(target, credentials=credentials, options=options,
                                                  interceptors=interceptors, **select)  # fmt: skip

    def service_channel(
        self, service: str, *, balancer: str = "p2c",
        credentials: grpc.ChannelCredentials | None = None, options: Options = (),
        interceptors: Sequence[Any] = (), select: Mapping[str, bool] | None = None,
    ) -> ServiceChannel:  # fmt: skip
        """One channel for every instance of ``service`` found in etcd: each call is balanced
        (``balancer``: p2c, round_robin, weighted_round_robin, weighted_random, random), an
        instance that fails is ejected by its own breaker, and UNAVAILABLE/RESOURCE_EXHAUSTED
        are retried on another instance within a budget (see telemetry.discovery.balanced)."""
        return self._parts().channels.service_channel(
            service, balancer=balancer, credentials=credentials, options=options,
            interceptors=interceptors, select=select,
        )  # fmt: skip

    def aio_service_channel(
        self, service: str, *, balancer: str = "p2c",
        credentials: grpc.ChannelCredentials | None = None, options: Options = (),
        interceptors: Sequence[Any] = (), select: Mapping[str, bool] | None = None,
    ) -> AioServiceChannel:  # fmt: skip
        """:meth:`service_channel` for grpc.aio."""
        return self._parts().channels.aio_service_channel(
            service, balancer=balancer, credentials=credentials, options=options,
            interceptors=interceptors, select=select,
        )  # fmt: skip

    def asgi(
        self, app: Any, *, route: Callable[[str], str] = lambda path: path,
        timeout_header: str = DEFAULT_TIMEOUT_HEADER, untraced_paths: Collection[str] = UNTRACED_PATHS,
        trusted_baggage: Collection[str] | None = (),
    ) -> AsgiTelemetry:  # fmt: skip
        """Wrap an ASGI app: a SERVER span per request continuing the caller's trace, the HTTP
        duration histogram, an access line, and ``timeout_header`` (milliseconds) as the deadline
        of the gRPC calls the app makes (see :mod:`telemetry.asgi`). ``route(path)`` gives the
        low-cardinality route name used in span names and labels. The caller's W3C baggage is
        dropped (an HTTP entry point is a trust boundary) but for the ``trusted_baggage`` keys
        (None keeps all)."""
        running = self._parts().running
        histogram = None
        if self.config.metrics_enabled:
            histogram = running.http_histogram(self.config.latency_buckets)
        return AsgiTelemetry(app, tracer=running.tracer, propagator=self.propagator,
                             histogram=histogram, route=route, timeout_header=timeout_header,
                             untraced_paths=untraced_paths, trusted_baggage=trusted_baggage)  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------------

    def register(self, address: str, **fields: Any) -> Registration:
        """Register this instance in etcd at ``address`` (host:port), in the background; it is
        deregistered first thing at :meth:`shutdown`. ``fields``: weight, zone, group, version,
        metadata, ttl (see :meth:`telemetry.discovery.node.Discovery.register`)."""
        discovery = self.discovery if self._plan.etcd is not None else None
        if discovery is None:
            raise ConfigError("register() needs etcd: telemetry.init(..., etcd='host:2379')")
        if self.metrics_server is not None:
            # Where this instance's metrics are scraped (its host, the metrics port): lets the
            # panel join a registration to its series in Prometheus.
            metadata = dict(fields.get("metadata") or {})
            metadata.setdefault("metrics", f"{address.rpartition(':')[0]}:{self.metrics_server.port}")
            fields["metadata"] = metadata
        return discovery.register(address, **fields)

    def serve(self, server: grpc.Server, *, grace: float = 10.0) -> None:
        """Block until SIGTERM/SIGINT, then deregister, drain in-flight calls for up to ``grace``
        seconds while refusing new ones, and flush telemetry (see :mod:`telemetry.lifecycle`)."""
        self.start()  # a server made with grpc directly still gets /metrics and etcd
        lifecycle.serve(server, deregister=self._deregister, shutdown=self.shutdown, grace=grace)

    async def serve_aio(self, server: grpc.aio.Server, *, grace: float = 10.0) -> None:
        self.start()
        await lifecycle.serve_aio(
            server, deregister=self._deregister, shutdown=self.shutdown, grace=grace
        )

    def _deregister(self) -> None:
        discovery = self.discovery
        if discovery is not None:
            discovery.deregister()

    def force_flush(self, timeout: float = 5.0) -> bool:
        started = self._started  # nothing to flush in a handle never started
        tracing = started.running.tracing if started is not None else None
        ok = tracing.force_flush(timeout) if tracing is not None else True
        return log_pipeline.flush(timeout) and ok

    def shutdown(self, timeout: float = 5.0) -> None:
        """Deregister from etcd, flush spans and logs, stop the metrics endpoint. Idempotent;
        bounded by ``timeout``. A handle shut down before it started cannot start any more."""
        with self._state_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
            started = self._started
        if started is not None:
            started.running.close(timeout)
        governance = self.governance
        if governance is not None:  # closed even unstarted: it may have been given, and used, in code
            bounded(lambda: governance.close(timeout), timeout + 1)
        if self._cluster_store is not None:
            self._cluster_store.close()  # its connections; limits go on deciding, locally
        log_pipeline.flush(timeout)  # lines written, and exported when logs go over OTLP
