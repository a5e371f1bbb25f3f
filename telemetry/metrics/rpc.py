"""RPC metrics under the go-grpc-prometheus names and label values, so community dashboards work.

``grpc_{server,client}_started_total``, ``_handled_total{grpc_code}``, ``_msg_received_total``,
``_msg_sent_total``, ``_handling_seconds`` (histogram, with a ``trace_id`` exemplar when the call's
span is sampled) and ``_in_flight``. Labels: ``grpc_type`` (unary, client_stream, server_stream,
bidi_stream), ``grpc_service``, ``grpc_method``, ``grpc_code`` in Go spelling (OK, Canceled, ...).

Each method keeps its numbers in one small object behind one lock, and a custom collector turns them
into metric families at scrape time: a call costs two short critical sections, not the eight method
chains prometheus-client's per-child metrics would. Cardinality is bounded: past ``max_methods``
distinct methods per side, new ones are counted under ``grpc_service="other", grpc_method="other"``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from telemetry.rpc.call import CallState, MethodInfo, RpcKind
from telemetry.rpc.status import go_code_name
from telemetry.tracing.concern import is_sampled, trace_ids

OVERFLOW_LABEL = "other"
_OK = grpc.StatusCode.OK
EXEMPLAR_INTERVAL = 1.0  # seconds between exemplar refreshes of one bucket
_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class MethodStats:
    """Counters, gauge and histogram of one method on one side."""

    __slots__ = (
        "_bounds",
        "_exemplar_at",
        "_lock",
        "buckets",
        "exemplars",
        "handled",
        "in_flight",
        "labels",
        "ok",
        "received",
        "sent",
        "started",
        "sum",
    )

    def __init__(self, labels: tuple[str, str, str], bounds: tuple[float, ...]) -> None:
        self.labels = labels
        self._bounds = bounds
        self._lock = threading.Lock()
        self.started = 0
        self.in_flight = 0
        self.received = 0
        self.sent = 0
        self.ok = 0  # handled with OK (the other codes are counted in ``handled``)
        self.handled: dict[grpc.StatusCode, int] = {}
        self.buckets = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self.exemplars: list[Exemplar | None] = [None] * (len(bounds) + 1)
        self._exemplar_at = [-EXEMPLAR_INTERVAL] * (len(bounds) + 1)
        self.sum = 0.0

    # The call hooks of the metrics concern for this method (see RpcMetricsConcern.for_method).

    def on_start(self, state: CallState) -> None:
        with self._lock:
            self.started += 1
            self.in_flight += 1

    def on_message(self, state: CallState, received: bool) -> None:
        with self._lock:
            if received:
                self.received += 1
            else:
                self.sent += 1

    def on_finish(self, state: CallState) -> None:
        """Count the end of a call: its code, duration (with the call's trace id as an exemplar
        when its span is sampled) and, for unary calls, its messages (streams count them live)."""
        seconds = state.duration
        index = bisect.bisect_left(self._bounds, seconds)  # first bucket with le >= seconds
        exemplar = None
        # A scrape keeps one exemplar per bucket: refreshing it once a second is plenty, and only
        # then is the trace id worth formatting. (An unlocked read: a race costs at most one
        # extra refresh.)
        now = time.monotonic()
        if now - self._exemplar_at[index] >= EXEMPLAR_INTERVAL and is_sampled(state):
            ids = trace_ids(state)
            if ids is not None:
                exemplar = Exemplar({"trace_id": ids[0]}, seconds, time.time())
        code = state.code
        unary = state.info.kind is RpcKind.UNARY
        with self._lock:
            self.in_flight -= 1
            if code is _OK:  # status codes are enums, whose hashing runs in Python
                self.ok += 1
            else:
                self.handled[code] = self.handled.get(code, 0) + 1
            self.buckets[index] += 1
            self.sum += seconds
            if unary:
                self.received += state.msgs_received
                self.sent += state.msgs_sent
            if exemplar is not None:
                self._exemplar_at[index] = now
                self.exemplars[index] = exemplar

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "started": self.started,
                "in_flight": self.in_flight,
                "received": self.received,
                "sent": self.sent,
                "handled": {_OK: self.ok, **self.handled} if self.ok else dict(self.handled),
                "buckets": list(self.buckets),
                "exemplars": list(self.exemplars),
                "sum": self.sum,
            }


class SideMetrics(Collector):
    """All methods of one side (``server`` or ``client``); registered as one collector."""

    def __init__(self, side: str, buckets: tuple[float, ...], max_methods: int) -> None:
        self.side = side
        self._bounds = tuple(buckets)
        self._max_methods = max_methods
        self._stats: dict[tuple[str, str, str], MethodStats] = {}
        self._methods: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def stats(self, info: MethodInfo) -> MethodStats:
        """The stats object for a method (shared by all callers of the same labels)."""
        method = (info.service, info.method)
        with self._lock:
            if method not in self._methods and len(self._methods) >= self._max_methods:
                method = (OVERFLOW_LABEL, OVERFLOW_LABEL)
            else:
                self._methods.add(method)
            labels = (info.kind.value, *method)
            stats = self._stats.get(labels)
            if stats is None:
                stats = self._stats[labels] = MethodStats(labels, self._bounds)
            return stats

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            all_stats = list(self._stats.values())
        families = self._families()
        started, handled, received, sent, handling, in_flight = families
        bounds = [*(_float_text(b) for b in self._bounds), "+Inf"]
        for stats in all_stats:
            snap = stats.snapshot()
            labels = list(stats.labels)
            started.add_metric(labels, snap["started"])
            in_flight.add_metric(labels, snap["in_flight"])
            received.add_metric(labels, snap["received"])
            sent.add_metric(labels, snap["sent"])
            for code, count in snap["handled"].items():
                handled.add_metric([*labels, go_code_name(code)], count)
            cumulative, buckets = 0, []
            for bound, count, exemplar in zip(bounds, snap["buckets"], snap["exemplars"], strict=True):
                cumulative += count
                buckets.append((bound, cumulative, exemplar) if exemplar else (bound, cumulative))
            handling.add_metric(labels, buckets, snap["sum"])
        return iter(families)

    def _families(self) -> list[Any]:
        side = self.side
        who = "the server" if side == "server" else "the client"
        labels = list(_LABELS)
        return [
            CounterMetricFamily(f"grpc_{side}_started", f"RPCs started on {who}.", labels=labels),
            CounterMetricFamily(
                f"grpc_{side}_handled",
                f"RPCs completed on {who}, regardless of success or failure.",
                labels=[*labels, "grpc_code"],
            ),
            CounterMetricFamily(
                f"grpc_{side}_msg_received", f"Stream messages received by {who}.", labels=labels
            ),
            CounterMetricFamily(
                f"grpc_{side}_msg_sent", f"Stream messages sent by {who}.", labels=labels
            ),
            HistogramMetricFamily(
                f"grpc_{side}_handling_seconds",
                f"Latency (seconds) of RPCs until completion on {who}.",
                labels=labels,
            ),
            GaugeMetricFamily(f"grpc_{side}_in_flight", f"RPCs in progress on {who}.", labels=labels),
        ]


def _float_text(value: float) -> str:
    return repr(float(value))


class RpcMetricsConcern:
    """Counts and times every call on one side: each method's calls run the hooks of its
    :class:`MethodStats`."""

    def __init__(self, metrics: SideMetrics) -> None:
        self._metrics = metrics

    def for_method(self, info: MethodInfo) -> MethodStats:
        return self._metrics.stats(info)
