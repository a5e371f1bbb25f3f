"""The overhead benchmark's modes and workloads, and how a server or client process of each mode
sets up its tracing (the peer's SDK pipeline, or this package's ``telemetry.init``).
``overhead.py`` is the entry point."""

from __future__ import annotations

from typing import Any

MODES = ("bare", "peer", "tracing", "full", "full_dead", "no_log", "no_metrics", "no_deadline",
         "tracing_unexported", "adapter", "header", "floor")  # fmt: skip
# Concerns each mode of this package leaves out (the modes after full_dead are diagnostics, not in
# the default run; tracing_unexported: spans made and ended but not exported,
# OTEL_TRACES_EXPORTER=none; adapter: this package's server and channel wrapping with no concern
# at all; header and floor: no telemetry, see _overhead_floor.py).
SELECT: dict[str, dict[str, bool]] = {
    "tracing": {"metrics": False, "logging": False, "deadlines": False},
    "tracing_unexported": {"metrics": False, "logging": False, "deadlines": False},
    "adapter": {"tracing": False, "metrics": False, "logging": False, "deadlines": False},
    "no_log": {"logging": False},
    "no_metrics": {"metrics": False},
    "no_deadline": {"deadlines": False},
}
DEFAULT_MODES = ("bare", "peer", "tracing", "full", "full_dead")
UNARY_ONLY = ("header", "floor")
SYNC_ONLY = ("floor",)
RUNTIMES = ("sync", "aio")
KINDS = ("unary", "server_stream", "bidi")
WORKLOADS = tuple(f"{runtime}_{kind}" for runtime in RUNTIMES for kind in KINDS)
CONCURRENCY = (1, 4)
STREAM_MESSAGES = 100  # per streaming call: the replies of Stream, the round trips of PingPong


def _otel_provider(endpoint: str) -> None:
    """The peer's SDK pipeline, configured exactly like this package's (same queue and batching)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=5),
            max_queue_size=2048,
            max_export_batch_size=512,
            schedule_delay_millis=1000,
        )
    )
    trace.set_tracer_provider(provider)


def _init_telemetry(name: str, mode: str, endpoint: str, log_path: str) -> Any:
    import telemetry

    return telemetry.init(
        service_name=name,
        traces_exporter="none" if mode in ("tracing_unexported", "adapter") else "otlp",
        otlp_endpoint=endpoint,
        metrics_port=0 if name.endswith("server") else None,
        metrics_host="127.0.0.1",
        log_stream=open(log_path, "a", encoding="utf-8"),
        access_log=not mode.startswith(("tracing", "adapter")),
        client_access_log="off" if mode.startswith(("tracing", "adapter")) else "errors",
        sampler="always_on",
        export_timeout=5.0,
    )
