"""RPC metrics under the go-grpc-prometheus names and label values, so community dashboards work.

``grpc_{server,client}_started_total``, ``_handled_total{grpc_code}``, ``_msg_received_total``,
``_msg_sent_total``, ``_handling_seconds`` (histogram, with a ``trace_id`` exemplar when the call's
span is sampled) and an in-flight gauge. Labels: ``grpc_type`` (unary, client_stream, server_stream,
bidi_stream), ``grpc_service``, ``grpc_method``, ``grpc_code`` in Go spelling (OK, Canceled, ...).

Label children are resolved once per method and cached on the method info, so a call costs a few
lock-protected increments. Cardinality is bounded: past ``max_methods`` distinct methods per side,
new ones are counted under ``grpc_service="other", grpc_method="other"``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from telemetry.rpc.call import CallState, MethodInfo, go_code_name
from telemetry.tracing.concern import is_sampled, trace_ids

OVERFLOW_LABEL = "other"
_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class _MethodChildren:
    __slots__ = (
        "_handled",
        "_handled_family",
        "_labels",
        "handling",
        "in_flight",
        "received",
        "sent",
        "started",
    )

    def __init__(self, metrics: SideMetrics, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled_family = metrics.handled
        self._handled: dict[grpc.StatusCode, Any] = {}
        self.started = metrics.started.labels(*labels)
        self.received = metrics.msg_received.labels(*labels)
        self.sent = metrics.msg_sent.labels(*labels)
        self.handling = metrics.handling.labels(*labels)
        self.in_flight = metrics.in_flight.labels(*labels)

    def handled(self, code: grpc.StatusCode) -> Any:
        child = self._handled.get(code)
        if child is None:
            child = self._handled_family.labels(*self._labels, go_code_name(code))
            self._handled[code] = child
        return child


class SideMetrics:
    """The metric families of one side (``server`` or ``client``) in one registry."""

    def __init__(
        self,
        side: str,
        registry: CollectorRegistry,
        buckets: tuple[float, ...],
        max_methods: int,
    ) -> None:
        who = "the server" if side == "server" else "the client"
        self.started = Counter(
            f"grpc_{side}_started", f"RPCs started on {who}.", _LABELS, registry=registry
        )
        self.handled = Counter(
            f"grpc_{side}_handled",
            f"RPCs completed on {who}, regardless of success or failure.",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.msg_received = Counter(
            f"grpc_{side}_msg_received",
            f"Stream messages received by {who}.",
            _LABELS,
            registry=registry,
        )
        self.msg_sent = Counter(
            f"grpc_{side}_msg_sent", f"Stream messages sent by {who}.", _LABELS, registry=registry
        )
        self.handling = Histogram(
            f"grpc_{side}_handling_seconds",
            f"Latency (seconds) of RPCs until completion on {who}.",
            _LABELS,
            buckets=buckets,
            registry=registry,
        )
        self.in_flight = Gauge(
            f"grpc_{side}_in_flight",
            f"RPCs in progress on {who}.",
            _LABELS,
            registry=registry,
        )
        self._max_methods = max_methods
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def unregister(self, registry: CollectorRegistry) -> None:
        for family in (
            self.started,
            self.handled,
            self.msg_received,
            self.msg_sent,
            self.handling,
            self.in_flight,
        ):
            with contextlib.suppress(KeyError):
                registry.unregister(family)

    def children(self, info: MethodInfo) -> _MethodChildren:
        key = (info.service, info.method)
        with self._lock:
            if key not in self._seen and len(self._seen) >= self._max_methods:
                key = (OVERFLOW_LABEL, OVERFLOW_LABEL)
            else:
                self._seen.add(key)
        return _MethodChildren(self, (info.kind.value, *key))


class RpcMetricsConcern:
    """Counts and times every call on one side."""

    def __init__(self, metrics: SideMetrics) -> None:
        self._metrics = metrics

    def prepare(self, info: MethodInfo) -> None:
        info.extras[self] = self._metrics.children(info)

    def on_start(self, state: CallState) -> None:
        children = state.info.extras[self]
        children.started.inc()
        children.in_flight.inc()

    def on_message(self, state: CallState, received: bool) -> None:
        children = state.info.extras[self]
        (children.received if received else children.sent).inc()

    def on_finish(self, state: CallState) -> None:
        children = state.info.extras[self]
        children.in_flight.dec()
        children.handled(state.code).inc()
        ids = trace_ids(state) if is_sampled(state) else None
        children.handling.observe(state.duration, {"trace_id": ids[0]} if ids else None)
