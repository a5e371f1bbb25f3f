"""Metrics of exact cluster limits (:mod:`telemetry.governance.cluster_limit`), at scrape time.

* ``governance_cluster_limit_mode{pattern,mode}``: 1 for the mode each cluster limit decides in
  now (``redis``: the shared bucket; ``local``: the even split, the store being unreachable), 0
  for the other;
* ``governance_cluster_limit_decisions_total{mode}``: decisions made in each mode;
* ``governance_cluster_store_errors_total``: round trips to the store that failed (each one
  starts or extends a backoff period);
* ``governance_cluster_store_fallbacks_total``: times the store went from answering to down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from telemetry.governance.cluster_limit import LOCAL, ClusterLimiter, ClusterStore

__all__ = ["ClusterLimitCollector"]


class ClusterLimitCollector(Collector):
    """``store``'s counters, and the mode of each limiter ``limiters()`` lists (pattern, limiter)."""

    def __init__(self, store: ClusterStore, limiters: Callable[[], list[tuple[str, object]]]) -> None:
        self._store = store
        self._limiters = limiters

    def collect(self) -> Iterator[Any]:
        store = self._store
        modes = (store.backend.name, LOCAL)
        mode = GaugeMetricFamily(
            "governance_cluster_limit_mode",
            "1 for where each cluster limit decides now: redis (exact, shared) or local (even split).",
            labels=["pattern", "mode"],
        )
        patterns = sorted({p for p, limiter in self._limiters() if isinstance(limiter, ClusterLimiter)})
        for pattern in patterns:
            for name in modes:
                mode.add_metric([pattern, name], 1.0 if store.mode == name else 0.0)
        yield mode
        decisions = CounterMetricFamily(
            "governance_cluster_limit_decisions",
            "Cluster limit decisions, by where they were made (redis: shared bucket; local: split).",
            labels=["mode"],
        )
        for name in modes:
            decisions.add_metric([name], float(store.decisions.get(name, 0)))
        yield decisions
        yield CounterMetricFamily(
            "governance_cluster_store_errors",
            "Round trips to the cluster limits' store that failed (each backs the store off).",
            value=float(store.errors),
        )
        yield CounterMetricFamily(
            "governance_cluster_store_fallbacks",
            "Times the cluster limits' store became unreachable and limits fell back to the split.",
            value=float(store.fallbacks),
        )
