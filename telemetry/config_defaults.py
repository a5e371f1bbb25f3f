"""The default values of :class:`telemetry.config.TelemetryConfig` that are lists of names: the
samplers and propagators known, the services left out of traces, the sensitive keys redacted and the
latency buckets (re-exported by :mod:`telemetry.config`)."""

from __future__ import annotations

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "ratelimiting",
    "parentbased_ratelimiting",
)
PROPAGATORS = ("tracecontext", "baggage", "none")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Services whose RPCs are infrastructure noise in traces and access logs.
DEFAULT_UNTRACED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
    "etcdserverpb.KV",
    "etcdserverpb.Lease",
    "etcdserverpb.Watch",
    "etcdserverpb.Cluster",
    "etcdserverpb.Maintenance",
    "etcdserverpb.Auth",
    "opentelemetry.proto.collector.trace.v1.TraceService",
    "opentelemetry.proto.collector.logs.v1.LogsService",
)
# Key names whose values are redacted (log lines, access-line metadata, header attributes): patterns
# matched whole, case-insensitively, "-" and "_" alike, "*" any run; "!name" exempts a name. Substring
# patterns fail closed (``*token*`` also redacts ``tokens_used``): see telemetry.logging.redaction.
DEFAULT_SENSITIVE_KEYS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "*token*",
    "*secret*",
    "*password*",
    "*passwd*",
    "*api-key*",
    "*apikey*",
    "*session*",
    "*credential*",
    "*private-key*",
    "*privatekey*",
)
# go-grpc-prometheus / Prometheus client default buckets, so community dashboards line up.
DEFAULT_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
