"""The :class:`Telemetry` handle: tracing, metrics and logging for one service, and the interceptors,
servers and channels built from them. :func:`init` creates one, installs it process-wide, and
registers its shutdown at exit.

Several handles can live in one process (tests run three services in one); each has its own tracer
provider and metric registry, while logging is process-wide and tells services apart per call.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import grpc
import grpc.aio
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, ProcessCollector

from telemetry import deadline, lifecycle
from telemetry.asgi import (
    DEFAULT_TIMEOUT_HEADER,
    UNTRACED_PATHS,
    AsgiTelemetry,
    http_duration_histogram,
)
from telemetry.config import ConfigError, TelemetryConfig
from telemetry.control.faults import FaultInjector
from telemetry.control.live_rules import LiveRules
from telemetry.control.metrics import ControlCollector
from telemetry.discovery.balancer import build_balancer
from telemetry.discovery.client import AioServiceChannel, ServiceChannel
from telemetry.discovery.etcd import EtcdConfig
from telemetry.discovery.metrics import DiscoveryCollector
from telemetry.discovery.node import Discovery, etcd_config
from telemetry.discovery.registry import Registration
from telemetry.governance.concerns import ClientGovernance, ServerGovernance
from telemetry.governance.engine import Governance, RulesInput
from telemetry.logging import pipeline as log_pipeline
from telemetry.logging.access import AccessLog
from telemetry.metrics.exposition import MetricsServer, serve_metrics
from telemetry.metrics.rpc import RpcMetricsConcern, SideMetrics
from telemetry.metrics.runtime import SelfMonitoringCollector
from telemetry.rpc._server_common import wrap_registrations
from telemetry.rpc.admission import PollerAdmission
from telemetry.rpc.aio_channel import InstrumentedAioChannel
from telemetry.rpc.aio_client import AioClientInterceptor
from telemetry.rpc.aio_server import AioServerInterceptor
from telemetry.rpc.call import Side
from telemetry.rpc.channel import InstrumentedChannel
from telemetry.rpc.client import ClientInterceptor
from telemetry.rpc.concern import Concern
from telemetry.rpc.executor import QueueTimedExecutor
from telemetry.rpc.server import ServerInterceptor
from telemetry.tracing.concern import ClientTracing, ServerTracing
from telemetry.tracing.rpcspan import SCOPE
from telemetry.tracing.setup import Tracing, build_propagator, build_tracing

_log = logging.getLogger("telemetry")


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
        self.governance: Governance | None = (
            governance
            if isinstance(governance, Governance) or governance is None
            else Governance(governance)
        )
        self.tracing: Tracing | None = None
        # With tracing disabled (OTEL_SDK_DISABLED) user code still gets a tracer: a no-op one.
        self.tracer: trace.Tracer = trace.NoOpTracer()
        if config.tracing_enabled:
            self.tracing = build_tracing(config, span_exporter, tuple(span_processors))
            # The scope of the RPC spans: the package's name and version (an empty version is
            # what OTLP receivers show as "unknown").
            self.tracer = self.tracing.provider.get_tracer(SCOPE.name, SCOPE.version)
        self.propagator = (
            self.tracing.propagator if self.tracing else build_propagator(config.propagators)
        )

        self.registry = registry if registry is not None else CollectorRegistry()
        self._collectors: list[Any] = []
        self.server_metrics: SideMetrics | None = None
        self.client_metrics: SideMetrics | None = None
        if config.metrics_enabled:
            buckets, cap = config.latency_buckets, config.max_method_labels
            self.server_metrics = SideMetrics("server", buckets, cap)
            self.client_metrics = SideMetrics("client", buckets, cap)
            self._register(self.server_metrics)
            self._register(self.client_metrics)
            if self.registry is not REGISTRY:  # the global one already has process metrics
                self._register(ProcessCollector(registry=None))
            self._register(SelfMonitoringCollector(self.tracing.pipeline if self.tracing else None))
            if self.governance is not None:
                self._register(self.governance.collector())
        self.metrics_server: MetricsServer | None = None
        if config.metrics_enabled and config.metrics_port is not None:
            self.metrics_server = serve_metrics(self.registry, config.metrics_host, config.metrics_port)
        self._http_histogram: Histogram | None = None
        self._shutdown_lock = threading.Lock()
        self._is_shut_down = False
        # etcd: discovery, registration and live rules; nothing blocks on etcd being up.
        self.discovery: Discovery | None = None
        if etcd is not None:
            self.discovery = Discovery(
                etcd_config(etcd),
                service=config.service_name,
                instance_id=instance_id,
                cache_file=discovery_cache,
            )
            if config.metrics_enabled:
                self._register(DiscoveryCollector(self.discovery.directory))
        # Fault-injection knobs (latency, errors, CPU burn) driven from etcd, for demos and drills;
        # last in the server chain, so refused calls burn nothing. Free while none are set.
        self.faults = FaultInjector()
        self._aio_faults = self.faults.linked(aio=True)
        if self.discovery is not None and self.governance is not None:
            live = LiveRules(
                self.discovery.client,
                self.governance,
                service=config.service_name,
                instance_id=self.discovery.instance_id,
                faults=self.faults,
                sampler=self.tracing.sampler if self.tracing is not None else None,
                instance_count=self.discovery.instance_count,
            )
            if config.metrics_enabled:
                self._register(ControlCollector(live))
            self.discovery.directory.add_listener(live.refresh)  # cluster limits follow the count
            self.discovery.on_close(live.stop)
            self.live_rules: LiveRules | None = live.start()
        else:
            self.live_rules = None

    # -- concerns: the building blocks of every interceptor -------------------------------------

    def server_concerns(
        self,
        *,
        tracing: bool = True,
        metrics: bool = True,
        logging: bool = True,
        deadlines: bool = True,
        governance: bool = True,
        aio: bool = False,
    ) -> list[Concern]:
        """The server chain, in order: tracing, access log, metrics, deadline, governance (when
        the handle has it). ``aio``: for a grpc.aio server (governance never blocks its loop)."""
        cfg = self.config
        concerns = self._concerns(
            self._server_tracing() if tracing else None,
            self._access_log(Side.SERVER, "all" if cfg.access_log else "off") if logging else None,
            self.server_metrics if metrics else None,
            deadline.ServerDeadline() if deadlines and cfg.deadline_propagation else None,
        )
        if governance and self.governance is not None:
            concerns.append(ServerGovernance(self.governance, blocking_waits=not aio))
        if self.live_rules is not None:  # the fault knobs arrive with the live rules
            concerns.append(self._aio_faults if aio else self.faults)
        return concerns

    def client_concerns(
        self,
        target: str = "",
        *,
        tracing: bool = True,
        metrics: bool = True,
        logging: bool = True,
        deadlines: bool = True,
        governance: bool = True,
        channel: Callable[[], grpc.Channel] | None = None,
        retries: bool = True,
    ) -> list[Concern]:
        """The client chain, in order: tracing, access log, metrics, deadline, governance (when
        the handle has it). ``channel`` makes a channel to ``target`` for deferred calls;
        ``retries`` False leaves retrying to the caller (a balanced channel's instances)."""
        cfg = self.config
        concerns = self._concerns(
            self._client_tracing(target) if tracing else None,
            self._access_log(Side.CLIENT, cfg.client_access_log) if logging else None,
            self.client_metrics if metrics else None,
            deadline.ClientDeadline() if deadlines and cfg.deadline_propagation else None,
        )
        if governance and self.governance is not None:
            concerns.append(ClientGovernance(self.governance, target, channel, retries=retries))
        return concerns

    def _concerns(
        self,
        tracing: Concern | None,
        access_log: AccessLog | None,
        metrics: SideMetrics | None,
        deadlines: Concern | None,
    ) -> list[Concern]:
        concerns: list[Concern] = []
        if tracing is not None:
            concerns.append(tracing)
        if access_log is not None:
            concerns.append(access_log)
        if metrics is not None:
            concerns.append(RpcMetricsConcern(metrics))
        if deadlines is not None:
            concerns.append(deadlines)
        return concerns

    def _server_tracing(self) -> ServerTracing | None:
        traced = self.tracing
        if traced is None:
            return None
        return ServerTracing(traced.rpc_tracer, traced.propagation, self.config.untraced_services)

    def _client_tracing(self, target: str) -> ClientTracing | None:
        traced = self.tracing
        if traced is None:
            return None
        untraced = self.config.untraced_services
        return ClientTracing(traced.rpc_tracer, traced.propagation, untraced, target)

    def _access_log(self, side: Side, lines: str) -> AccessLog:
        cfg = self.config
        return AccessLog(
            cfg.service_name,
            side,
            lines=lines,
            excluded_services=cfg.untraced_services,
            log_metadata=cfg.log_metadata,
            log_payloads=cfg.log_payloads,
            payload_max_chars=cfg.payload_max_chars,
            sensitive_keys=cfg.sensitive_keys,
        )

    # -- interceptors: one per side and flavour, running the selected concerns ------------------

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

    # -- shortcuts: fully instrumented servers and channels -------------------------------------

    def server(
        self,
        *,
        max_workers: int = 16,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
        maximum_concurrent_rpcs: int | None = None,
        **select: bool,
    ) -> grpc.Server:
        """A sync ``grpc.Server`` whose registered handlers are wrapped with the concern chain
        (cheaper per call than an interceptor); ``interceptors`` run before the chain. ``select``
        leaves concerns out, as for :meth:`server_concerns` (e.g. ``metrics=False``).
        With governance, the adaptive limiter also refuses in grpc's poller thread
        (telemetry.rpc.admission), within ``maximum_concurrent_rpcs`` if given."""
        governance = self.governance if select.get("governance", True) else None
        admission = PollerAdmission(governance) if governance is not None else None
        # Governance stamps each call as it is queued, for queue-delay shedding (CoDel).
        pool = QueueTimedExecutor if governance is not None else ThreadPoolExecutor
        server = grpc.server(
            pool(max_workers=max_workers, thread_name_prefix="grpc-handler"),
            interceptors=([admission, *interceptors] if admission else list(interceptors)) or None,
            options=list(options),
            maximum_concurrent_rpcs=maximum_concurrent_rpcs,
        )
        if admission is not None:
            admission.attach(server)
        return wrap_registrations(server, self.server_interceptor(**select))

    def aio_server(
        self,
        *,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
        maximum_concurrent_rpcs: int | None = None,
        **select: bool,
    ) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=list(interceptors) or None,
            options=list(options),
            maximum_concurrent_rpcs=maximum_concurrent_rpcs,
        )
        return wrap_registrations(server, self.aio_server_interceptor(**select))

    def channel(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[Any] = (),
        **select: bool,
    ) -> grpc.Channel:
        """A sync channel (TLS when ``credentials`` are given); telemetry runs first, then
        ``interceptors``. Calls skip grpc's interceptor machinery (see telemetry.rpc.channel).
        With etcd configured, a bare service name (no ``:``) gives a :meth:`service_channel`.
        ``select`` leaves concerns out (``metrics=False`` ...); ``retries=False`` leaves retrying
        failed calls to the caller (a balanced channel makes its instances' channels so)."""
        if self._is_service_name(target):
            return self.service_channel(target, credentials=credentials, options=options,
                                        interceptors=interceptors, select=select)  # fmt: skip
        if credentials is not None:
            channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            channel = grpc.insecure_channel(target, options=list(options))
        if interceptors:
            channel = grpc.intercept_channel(channel, *interceptors)
        runner = self.client_interceptor(
            target, channel=self._deferral_channel(target, credentials, options), **select
        )
        return InstrumentedChannel(channel, runner)

    def aio_channel(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[Any] = (),
        **select: bool,
    ) -> grpc.aio.Channel:
        if self._is_service_name(target):
            return self.aio_service_channel(target, credentials=credentials, options=options,
                                            interceptors=interceptors, select=select)  # fmt: skip
        deferral = self._deferral_channel(target, credentials, options)
        core = AioClientInterceptor(self.client_concerns(target, channel=deferral, **select), target)
        # Calls skip grpc.aio's interceptor machinery (telemetry.rpc.aio_channel); the caller's
        # own interceptors, if any, run after the chain.
        chain = list(interceptors) or None
        if credentials is not None:
            channel = grpc.aio.secure_channel(
                target, credentials, options=list(options), interceptors=chain
            )
        else:
            channel = grpc.aio.insecure_channel(target, options=list(options), interceptors=chain)
        return InstrumentedAioChannel(channel, core)

    def _is_service_name(self, target: str) -> bool:
        return self.discovery is not None and ":" not in target and "/" not in target

    def _balanced(
        self, service: str, balancer: str, make_one: Callable[..., Any],
        credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]],
        interceptors: Sequence[Any], select: Mapping[str, bool] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """A service channel's arguments; ``make_one`` (channel or aio_channel) makes the
        channel of each instance, with the same credentials, options and concerns."""
        if self.discovery is None:
            raise ConfigError(f"a channel to service {service!r} needs etcd: init(..., etcd=...)")
        chosen = dict(select or {})
        governance = self.governance if chosen.get("governance", True) else None
        # One retry layer: the balanced channel retries (on another instance), with governance's
        # plan for the service when it has one; the instance channels never retry themselves.
        return {
            "service": service,
            "source": self.discovery.directory,
            "balancer": build_balancer(balancer),
            "make_channel": partial(make_one, credentials=credentials, options=options,
                                    interceptors=interceptors, **{**chosen, "retries": False}),
            "retry_plans": (
                None if governance is None
                else lambda method: governance.retry_plan(method, service)
            ),
        }  # fmt: skip

    def service_channel(
        self,
        service: str,
        *,
        balancer: str = "p2c",
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[Any] = (),
        select: Mapping[str, bool] | None = None,
    ) -> ServiceChannel:
        """One channel for every instance of ``service`` found in etcd: each call is balanced
        (``balancer``: p2c, round_robin, weighted_round_robin, weighted_random, random), an
        instance that fails is ejected by its own breaker, and UNAVAILABLE/RESOURCE_EXHAUSTED
        are retried on another instance within a budget (see telemetry.discovery.client)."""
        return ServiceChannel(**self._balanced(
            service, balancer, self.channel, credentials, options, interceptors, select
        ))  # fmt: skip

    def aio_service_channel(
        self,
        service: str,
        *,
        balancer: str = "p2c",
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[Any] = (),
        select: Mapping[str, bool] | None = None,
    ) -> AioServiceChannel:
        """:meth:`service_channel` for grpc.aio."""
        return AioServiceChannel(**self._balanced(
            service, balancer, self.aio_channel, credentials, options, interceptors, select
        ))  # fmt: skip

    def _deferral_channel(
        self,
        target: str,
        credentials: grpc.ChannelCredentials | None,
        options: Sequence[tuple[str, Any]],
    ) -> Callable[[], grpc.Channel] | None:
        """How deferred calls reach ``target`` later: a sync channel (traced, counted, not
        governed: the call was already admitted), made on first use."""
        if self.governance is None:
            return None

        def make() -> grpc.Channel:
            return self.channel(target, credentials=credentials, options=options, governance=False)

        return make

    def asgi(
        self,
        app: Any,
        *,
        route: Callable[[str], str] = lambda path: path,
        timeout_header: str = DEFAULT_TIMEOUT_HEADER,
        untraced_paths: Collection[str] = UNTRACED_PATHS,
        trusted_baggage: Collection[str] | None = (),
    ) -> AsgiTelemetry:
        """Wrap an ASGI app: a SERVER span per request continuing the caller's trace, the HTTP
        duration histogram, an access line, and ``timeout_header`` (milliseconds) as the deadline
        of the gRPC calls the app makes (see :mod:`telemetry.asgi`). ``route(path)`` gives the
        low-cardinality route name used in span names and labels. The caller's W3C baggage is
        dropped (an HTTP entry point is a trust boundary) but for the ``trusted_baggage`` keys
        (None keeps all)."""
        if self._http_histogram is None and self.config.metrics_enabled:
            self._http_histogram = http_duration_histogram(self.config.latency_buckets)
            self._register(self._http_histogram)
        return AsgiTelemetry(
            app,
            tracer=self.tracer,
            propagator=self.propagator,
            histogram=self._http_histogram,
            route=route,
            timeout_header=timeout_header,
            untraced_paths=untraced_paths,
            trusted_baggage=trusted_baggage,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The SDK provider for spans made in handler code (None with tracing disabled)."""
        return self.tracing.provider if self.tracing is not None else None

    @property
    def metrics_url(self) -> str | None:
        return self.metrics_server.url if self.metrics_server is not None else None

    def force_flush(self, timeout: float = 5.0) -> bool:
        ok = self.tracing.force_flush(timeout) if self.tracing is not None else True
        return log_pipeline.flush(timeout) and ok

    def register(self, address: str, **fields: Any) -> Registration:
        """Register this instance in etcd at ``address`` (host:port), in the background; it is
        deregistered first thing at :meth:`shutdown`. ``fields``: weight, zone, group, version,
        metadata, ttl (see :meth:`telemetry.discovery.node.Discovery.register`)."""
        if self.discovery is None:
            raise ConfigError("register() needs etcd: telemetry.init(..., etcd='host:2379')")
        if self.metrics_server is not None:
            # Where this instance's metrics are scraped (its host, the metrics port): lets the
            # panel join a registration to its series in Prometheus.
            metadata = dict(fields.get("metadata") or {})
            metadata.setdefault("metrics", f"{address.rpartition(':')[0]}:{self.metrics_server.port}")
            fields["metadata"] = metadata
        return self.discovery.register(address, **fields)

    def serve(self, server: grpc.Server, *, grace: float = 10.0) -> None:
        """Block until SIGTERM/SIGINT, then deregister, drain in-flight calls for up to ``grace``
        seconds while refusing new ones, and flush telemetry (see :mod:`telemetry.lifecycle`)."""
        lifecycle.serve(server, self, grace=grace)

    async def serve_aio(self, server: grpc.aio.Server, *, grace: float = 10.0) -> None:
        await lifecycle.serve_aio(server, self, grace=grace)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush spans and logs, stop the metrics endpoint. Idempotent; bounded by ``timeout``."""
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        if self.discovery is not None:
            discovery = self.discovery
            _bounded(discovery.close, timeout)
        if self.tracing is not None:
            tracing = self.tracing
            _bounded(lambda: tracing.shutdown(timeout), timeout + 1)
        if self.governance is not None:
            governance = self.governance
            _bounded(lambda: governance.close(timeout), timeout + 1)
        if self.metrics_server is not None:
            self.metrics_server.close()
        for collector in self._collectors:
            with contextlib.suppress(KeyError):
                self.registry.unregister(collector)
        log_pipeline.flush(timeout)

    def _register(self, collector: Any) -> None:
        self.registry.register(collector)
        self._collectors.append(collector)


def _bounded(fn: Any, timeout: float) -> None:
    """Run ``fn`` but give up waiting after ``timeout``: a dead collector must not hang exit."""
    worker = threading.Thread(target=fn, name="telemetry-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _log.warning("telemetry shutdown did not finish within %.1fs; giving up on it", timeout)


_current: Telemetry | None = None
_current_lock = threading.Lock()


def init(
    service_name: str | None = None,
    *,
    config: TelemetryConfig | None = None,
    registry: CollectorRegistry | None = None,
    span_exporter: SpanExporter | None = None,
    governance: Governance | RulesInput | None = None,
    etcd: EtcdConfig | str | Sequence[str] | None = None,
    instance_id: str | None = None,
    discovery_cache: str | None = None,
    **settings: Any,
) -> Telemetry:
    """Configure tracing, metrics and logging for this process, from the environment and arguments.

    Keyword arguments are :class:`TelemetryConfig` fields and win over environment variables. The
    handle is installed as the global tracer provider and propagator and returned; its
    :meth:`~Telemetry.shutdown` runs at exit. Calling ``init`` again replaces the previous handle.
    ``governance``: rules (object, mapping, JSON text or a JSON/YAML file path) or a
    :class:`~telemetry.governance.Governance`; servers and channels built from the handle then
    enforce them, and ``handle.governance.apply(...)`` changes them at runtime.
    ``etcd``: endpoints (or an :class:`~telemetry.discovery.EtcdConfig`) for service discovery,
    registration (``handle.register(address)``), balanced channels by service name
    (``handle.channel("inventory")``) and live rules under ``/governance/<service>/``.
    """
    global _current
    if config is None:
        config = TelemetryConfig.from_env(service_name=service_name, **settings)
    elif service_name is not None or settings:
        config = config.replace(**({"service_name": service_name} if service_name else {}), **settings)
    with _current_lock:
        previous, _current = _current, None
    if previous is not None:
        previous.shutdown()
    log_pipeline.configure(
        service_name=config.service_name,
        level=config.log_level,
        fmt=config.log_format,
        stream=config.log_stream,
        queue_size=config.log_queue_size,
        capture_stdlib=config.capture_stdlib_logging,
        sensitive_keys=config.sensitive_keys,
    )
    handle = Telemetry(
        config,
        registry=registry if registry is not None else REGISTRY,
        span_exporter=span_exporter,
        governance=governance,
        etcd=etcd,
        instance_id=instance_id,
        discovery_cache=discovery_cache,
    )
    if handle.tracer_provider is not None:
        _set_global_tracer_provider(handle.tracer_provider)
    propagate.set_global_textmap(handle.propagator)
    with _current_lock:
        _current = handle
    atexit.register(handle.shutdown)
    return handle


def _set_global_tracer_provider(provider: TracerProvider) -> None:
    # The API sets the global provider once and keeps the first, so a second init (tests, a
    # reload) would leave trace.get_tracer() on the old handle: clear its private set-once flag
    # (opentelemetry-api 1.x; tests/unit/test_reinit.py fails without this line).
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    trace.set_tracer_provider(provider)


def current() -> Telemetry:
    """The handle installed by :func:`init`."""
    handle = _current
    if handle is None:
        raise RuntimeError("telemetry is not initialised: call telemetry.init(service_name=...) first")
    return handle
