"""The pure part of ``chaos.py``: figures from plain data (request records, Prometheus text), no
processes and no I/O, so the definitions below are unit-tested (tests/unit/test_chaos_analysis.py).

Times are seconds relative to the fault's start (a request sent 3 s before it has ``sent = -3.0``);
the fault window is ``[0, fault)``, "after" is ``[fault, run_end)``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "HOPS",
    "Bin",
    "Hop",
    "Record",
    "Snapshot",
    "amplification",
    "bins",
    "counter_sum",
    "increase",
    "merge_snapshots",
    "p99",
    "parse_metrics",
    "recovery_seconds",
    "service_increase",
    "service_of",
    "status_counts",
    "summarize",
]

OK_STATUS = 201
"""``POST /orders`` answers 201 Created when the order was placed."""
SKIPPED = -1
"""The status recorded for a request the generator did not send (too many in flight)."""
NO_ANSWER = 0
"""The status recorded for a request that got no HTTP answer (refused, reset, timed out)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One request: when it was sent (s, relative to the fault's start), how long it took (s),
    its HTTP status (or :data:`SKIPPED` / :data:`NO_ANSWER`); ``degraded``: placed, but with the
    default recommendations (recommendation failed and order fell back)."""

    sent: float
    latency: float
    status: int
    degraded: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK_STATUS


# -- percentiles, bins, recovery ------------------------------------------------------------------


def p99(values: Iterable[float]) -> float | None:
    """The 99th percentile by nearest rank (the smallest value >= 99% of them); None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Bin:
    start: float
    """The bin is ``[start, start + width)``, by send time."""
    sent: int
    ok: int
    p99_ok_ms: float | None
    """p99 latency of the successful requests sent in the bin (None: none succeeded)."""

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.sent if self.sent else None


def bins(records: Iterable[Record], start: float, end: float, width: float = 1.0) -> list[Bin]:
    """Requests grouped by send time into ``[start + k * width, start + (k + 1) * width)`` bins
    covering ``[start, end)``; records outside are left out."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    count = max(0, math.ceil((end - start) / width - 1e-9))
    sent = [0] * count
    ok = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    for record in records:
        if not start <= record.sent < end:
            continue
        index = min(count - 1, int((record.sent - start) // width))
        sent[index] += 1
        if record.ok:
            ok[index] += 1
            latencies[index].append(record.latency)
    result = []
    for index in range(count):
        worst = p99(latencies[index])
        result.append(
            Bin(start + index * width, sent[index], ok[index], None if worst is None else worst * 1000)
        )
    return result


def recovery_seconds(
    records: Sequence[Record],
    fault_end: float,
    run_end: float,
    window: float = 5.0,
    threshold: float = 0.95,
) -> float | None:
    """The smallest ``t >= 0`` such that at least ``threshold`` of the requests sent in
    ``[fault_end + t, fault_end + t + window)`` succeeded; None when no such window ends by
    ``run_end`` (never recovered within the run).

    The share changes only when a send enters or leaves the window, so ``t = 0`` and the windows
    starting at each send after ``fault_end`` are the candidates; a window must hold at least one
    request and lie wholly before ``run_end``."""
    after = sorted((r for r in records if r.sent >= fault_end), key=lambda r: r.sent)
    candidates = [0.0, *(r.sent - fault_end for r in after)]
    times = [r.sent for r in after]
    oks = [0]
    for record in after:
        oks.append(oks[-1] + record.ok)
    first = 0
    for t in candidates:
        begin = fault_end + t
        if begin + window > run_end + 1e-9:
            return None
        while first < len(times) and times[first] < begin:
            first += 1
        last = bisect.bisect_left(times, begin + window, lo=first)  # the window: times[first:last]
        sent = last - first
        if sent and (oks[last] - oks[first]) >= threshold * sent - 1e-9:
            return round(t, 3)
    return None


# -- Prometheus counters ---------------------------------------------------------------------------

Snapshot = list[tuple[str, dict[str, str], float]]
"""Samples of one or more /metrics pages: (sample name, labels, value)."""


def parse_metrics(text: str) -> Snapshot:
    """Every sample of a Prometheus text-format page (sample names keep ``_total``)."""
    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def merge_snapshots(snapshots: Iterable[Snapshot]) -> Snapshot:
    """The samples of several instances together (sums over them then add the instances up)."""
    return [sample for snapshot in snapshots for sample in snapshot]


def counter_sum(snapshot: Snapshot, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = dict(labels or {})
    return sum(
        value
        for sample, have, value in snapshot
        if sample == name and all(have.get(k) == v for k, v in wanted.items())
    )


def increase(before: float, after: float) -> float:
    """A counter's increase; a smaller value after means the process restarted (counter reset),
    so the increase is at least what it counted since."""
    return after - before if after >= before else after


@dataclass(frozen=True, slots=True)
class Hop:
    """Calls that reached ``callee`` (its own ``grpc_server_started_total`` for ``method``: a call
    refused locally by the caller's breaker never left it, so it is not counted), per request
    ``caller`` received (``upstream``: a sample name and labels at the caller)."""

    name: str
    caller: str
    callee: str
    method: Mapping[str, str]
    upstream: tuple[str, Mapping[str, str]]


_HTTP_ORDERS = (
    "http_server_request_duration_seconds_count",
    {"http_request_method": "POST", "http_route": "/orders"},
)
_PLACE_ORDER = ("grpc_server_started_total", {"grpc_method": "PlaceOrder"})
HOPS = (
    Hop("gateway->order", "gateway", "order",
        {"grpc_service": "demoshop.v1.Order", "grpc_method": "PlaceOrder"}, _HTTP_ORDERS),
    Hop("order->inventory", "order", "inventory",
        {"grpc_service": "demoshop.v1.Inventory", "grpc_method": "Reserve"}, _PLACE_ORDER),
    Hop("order->payment", "order", "payment",
        {"grpc_service": "demoshop.v1.Payment", "grpc_method": "Charge"}, _PLACE_ORDER),
)  # fmt: skip
"""The hops of an order whose retry amplification is measured."""


def service_of(instance: str) -> str:
    """``inventory-2`` -> ``inventory``; a single instance keeps the bare name."""
    return instance.rsplit("-", 1)[0] if instance.rsplit("-", 1)[-1].isdigit() else instance


def service_increase(
    before: Mapping[str, Snapshot],
    after: Mapping[str, Snapshot],
    service: str,
    name: str,
    labels: Mapping[str, str],
) -> float:
    """How much ``name`` grew over ``service``'s instances (instance name -> samples), instance
    by instance: one killed meanwhile (missing after) adds nothing, one restarted adds what it
    counted since."""
    total = 0.0
    for instance, new in after.items():
        if service_of(instance) == service and instance in before:
            total += increase(
                counter_sum(before[instance], name, labels), counter_sum(new, name, labels)
            )
    return total


def amplification(
    before: Mapping[str, Snapshot],
    after: Mapping[str, Snapshot],
    hops: Sequence[Hop] = HOPS,
    received: Mapping[str, float] | None = None,
) -> dict[str, float | None]:
    """Hop name -> calls that reached the callee per request the caller received, between two
    scrapes (instance name -> samples); None when the caller received nothing. ``received``
    gives a caller's requests directly (the gateway's: what the benchmark sent meanwhile; its
    HTTP histogram counts a request only when it ends, which lags behind during a slow fault)."""
    result: dict[str, float | None] = {}
    for hop in hops:
        name, labels = hop.upstream
        if received is not None and hop.caller in received:
            upstream = received[hop.caller]
        else:
            upstream = service_increase(before, after, hop.caller, name, labels)
        downstream = service_increase(before, after, hop.callee, "grpc_server_started_total", hop.method)
        result[hop.name] = round(downstream / upstream, 3) if upstream > 0 else None
    return result


# -- one run's figures ----------------------------------------------------------------------------


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summarize(
    records: Sequence[Record],
    fault: float,
    run_end: float,
    hops: Mapping[str, float | None] | None = None,
) -> dict[str, Any]:
    """The figures of one scenario x mode (see chaos.py's docstring for their definitions)."""
    during = [r for r in records if 0 <= r.sent < fault]
    after = [r for r in records if fault <= r.sent < run_end]
    hop_values = dict(hops or {})
    known = [v for v in hop_values.values() if v is not None]
    return {
        "sent": len(records),
        "ok": sum(r.ok for r in records),
        "sent_during": len(during),
        "failed_during": sum(not r.ok for r in during),
        "degraded_during": sum(r.ok and r.degraded for r in during),
        "sent_after": len(after),
        "failed_after": sum(not r.ok for r in after),
        "failed_before": sum(not r.ok for r in records if r.sent < 0),
        "recovery_s": recovery_seconds(records, fault, run_end),
        "p99_ok_ms": _ms(p99(r.latency for r in records if r.ok)),
        "p99_ok_during_ms": _ms(p99(r.latency for r in during if r.ok)),
        "statuses_during": status_counts(during),
        "amplification": max(known) if known else None,
        "amplification_hops": hop_values,
    }


def status_counts(records: Iterable[Record]) -> dict[str, int]:
    """HTTP status (or ``skipped`` / ``no_answer``) -> how many requests got it."""
    counts: dict[str, int] = {}
    for record in records:
        key = {SKIPPED: "skipped", NO_ANSWER: "no_answer"}.get(record.status, str(record.status))
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
