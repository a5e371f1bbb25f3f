"""The process-wide handle: :func:`init` builds a :class:`~telemetry.handle.Telemetry`, starts it,
installs it as OpenTelemetry's global tracer provider and propagator and registers its shutdown at
exit; :func:`current` returns it."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from telemetry.config import TelemetryConfig
from telemetry.discovery.etcd import EtcdConfig
from telemetry.governance.engine import Governance
from telemetry.governance.loading import RulesInput
from telemetry.handle import Telemetry
from telemetry.logging import pipeline as log_pipeline
from telemetry.logging.otlp_logs import build_log_export

__all__ = ["current", "init"]

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
    handle is started (metrics endpoint, span export, etcd), installed as the global tracer provider
    and propagator and returned; its :meth:`~Telemetry.shutdown` runs at exit. Calling ``init``
    again replaces the previous handle.
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
    log_pipeline.export_to(build_log_export(config))  # None unless logs_exporter asks for it
    handle = Telemetry(
        config,
        registry=registry if registry is not None else REGISTRY,
        span_exporter=span_exporter,
        governance=governance,
        etcd=etcd,
        instance_id=instance_id,
        discovery_cache=discovery_cache,
    )
    # Started now, as a service expects of init: /metrics answers and etcd sees it at once.
    handle.start()
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
