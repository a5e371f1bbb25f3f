"""Every governance decision is observable three ways: a metric, a span event, a log line.

:class:`DecisionRecorder` counts decisions (``governance_decisions_total{mechanism,service,method,
outcome}``), adds a ``governance.<outcome>`` event to the call's span and marks the call's access
line, and logs a line per decision kind at most once a second (with how many it folded), so an
overload does not turn into a log flood. Breaker transitions and rule changes are always logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from opentelemetry.trace import Span
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from telemetry.method_names import split_method

_log = logging.getLogger("telemetry.governance")

MAX_METHOD_LABELS = 500  # as the grpc metrics' max_method_labels: past it, "other"
_OVERFLOW = ("other", "other")
_MAX_LABEL_CHARS = 200


class _MethodName(Protocol):
    @property
    def service(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def full_method(self) -> str: ...


class DecidedCall(Protocol):
    """What a decision marks on the call it is about (the chain's CallState is one)."""

    @property
    def info(self) -> _MethodName: ...
    @property
    def span(self) -> Span | None: ...

    fields: dict[str, Any] | None


# outcome names used across mechanisms
REJECTED = "rejected"
FALLBACK = "fallback"
DEFERRED = "deferred"
RETRIED = "retried"


class DecisionRecorder:
    """Counts and reports decisions; cheap enough for the rejection path of an overloaded server."""

    def __init__(
        self,
        log_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_methods: int = MAX_METHOD_LABELS,
    ) -> None:
        """``max_methods``: distinct (service, method) label pairs kept; later ones are counted,
        and their log lines sampled, as ("other", "other"): method names can come from callers
        (a generic handler serves any name), and every table and label set needs a bound."""
        self._counts: dict[tuple[str, str, str, str], int] = {}
        self._max_methods = max_methods
        self._methods: set[tuple[str, str]] = set()
        self._transitions: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._log_interval = log_interval
        self._clock = clock
        self._last_logged: dict[tuple[str, str, str], tuple[float, int]] = {}

    def decision(
        self,
        state: DecidedCall | None,
        mechanism: str,
        outcome: str,
        reason: str = "",
        **attributes: Any,
    ) -> None:
        if state is None:
            self._count(("", ""), "", mechanism, outcome, reason, attributes)
            return
        info = state.info
        self._count(
            (info.service, info.method), info.full_method, mechanism, outcome, reason, attributes
        )
        _mark_call(state, mechanism, outcome, reason, attributes)

    def decision_for(self, full_method: str, mechanism: str, outcome: str, reason: str = "") -> None:
        """A decision with no call state at hand: a call refused before the chain saw it, or a
        retry decided by a channel's retry loop between attempts."""
        self._count(split_method(full_method), full_method, mechanism, outcome, reason, {})

    def _count(
        self,
        service_method: tuple[str, str],
        full_method: str,
        mechanism: str,
        outcome: str,
        reason: str,
        attributes: dict[str, Any],
    ) -> None:
        service, method = service_method
        if len(service) + len(method) > 2 * _MAX_LABEL_CHARS:  # bounded in bytes too
            service_method = (service[:_MAX_LABEL_CHARS], method[:_MAX_LABEL_CHARS])
            full_method = full_method[: 2 * _MAX_LABEL_CHARS]
        with self._lock:
            if service_method not in self._methods:
                if len(self._methods) < self._max_methods:
                    self._methods.add(service_method)
                else:
                    service_method = _OVERFLOW
                    full_method = "other"
            key = (mechanism, *service_method, outcome)
            self._counts[key] = self._counts.get(key, 0) + 1
        self._log_sampled(mechanism, outcome, full_method, reason, attributes)

    def counts(self) -> dict[tuple[str, str, str, str], int]:
        with self._lock:
            return dict(self._counts)

    def transition(self, target: str, method: str, old: str, new: str, reason: str) -> None:
        """A breaker changed state: counted and always logged (transitions are rare and matter)."""
        key = (target, method, new.lower())
        with self._lock:
            self._transitions[key] = self._transitions.get(key, 0) + 1
        _log.warning(
            "circuit breaker %s -> %s for %s at %s",
            old.lower(),
            new.lower(),
            method,
            target,
            extra={"breaker.from": old.lower(), "breaker.to": new.lower(), "reason": reason,
                   "grpc.method": method, "target": target},
        )  # fmt: skip

    def transitions(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._transitions)

    def rules_applied(self, generation: int) -> None:
        _log.info("governance rules applied", extra={"generation": generation})

    def _log_sampled(
        self, mechanism: str, outcome: str, method: str, reason: str, attributes: dict[str, Any]
    ) -> None:
        key = (mechanism, outcome, method)
        now = self._clock()
        with self._lock:
            last, folded = self._last_logged.get(key, (-1e18, 0))
            if now - last < self._log_interval:
                self._last_logged[key] = (last, folded + 1)
                return
            self._last_logged[key] = (now, 0)
        # A rate limit refusing is the limit working as configured (say, a scraper over its
        # quota): info. Other refusals (overload, breakers) are worth a warning.
        level = logging.INFO if mechanism == "rate_limit" else logging.WARNING
        _log.log(
            level,
            "governance %s %s %s",
            mechanism,
            outcome,
            method,
            extra={
                "governance.mechanism": mechanism,
                "governance.outcome": outcome,
                "grpc.method": method,
                "reason": reason,
                "folded": folded,  # same decisions not logged since the previous line
                **attributes,
            },
        )


def _mark_call(
    state: DecidedCall, mechanism: str, outcome: str, reason: str, attributes: dict[str, Any]
) -> None:
    span = state.span
    if span is not None and span.is_recording():
        event: dict[str, str | int | float] = {
            "governance.mechanism": mechanism,
            "governance.reason": reason,
        }
        event.update(
            {f"governance.{k}": v for k, v in attributes.items() if isinstance(v, str | int | float)}
        )
        span.add_event(f"governance.{outcome}", event)
        span.set_attribute("governance.decision", f"{outcome}:{mechanism}")
    if state.fields is None:
        state.fields = {}
    state.fields["governance"] = f"{outcome}:{mechanism}"


class GovernanceCollector(Collector):
    """Exports decision counts and the live state of the mechanisms at scrape time."""

    def __init__(
        self, recorder: DecisionRecorder, live: Callable[[], Iterator[tuple[str, dict[str, str], float]]]
    ) -> None:
        self._recorder = recorder
        self._live = live

    def collect(self) -> Iterator[Any]:
        decisions = CounterMetricFamily(
            "governance_decisions",
            "Governance decisions other than a plain admit, by mechanism and outcome.",
            labels=["mechanism", "grpc_service", "grpc_method", "outcome"],
        )
        for labels, count in sorted(self._recorder.counts().items()):
            decisions.add_metric(list(labels), count)
        yield decisions
        transitions = CounterMetricFamily(
            "governance_breaker_transitions",
            "Circuit breaker state changes, by target, method and the state entered.",
            labels=["target", "method", "state"],
        )
        for tlabels, count in sorted(self._recorder.transitions().items()):
            transitions.add_metric(list(tlabels), count)
        yield transitions
        gauges: dict[str, GaugeMetricFamily] = {}
        for name, gauge_labels, value in self._live():
            family = gauges.get(name)
            if family is None:
                family = gauges[name] = GaugeMetricFamily(
                    name, _GAUGE_HELP.get(name, name), labels=list(gauge_labels)
                )
            family.add_metric(list(gauge_labels.values()), value)
        yield from gauges.values()


_GAUGE_HELP = {
    "governance_breaker_state": (
        "Circuit breaker state per target and method: "
        "0 closed, 1 half-open, 2 open, 3 forced open, 4 forced closed."
    ),
    "governance_breaker_admitted_share": (
        "Share of calls a breaker admits (1 closed, 0 open, the ramp share while recovering)."
    ),
    "governance_adaptive_limit": "Current concurrency limit of the adaptive limiter.",
    "governance_adaptive_in_flight": "Calls in flight counted by the adaptive limiter.",
    "governance_pressure": (
        "Load signals the adaptive limiter reads (cpu: fraction of one core; loop_lag: seconds)."
    ),
    "governance_shedding": "1 while the adaptive limiter is shedding, with the reason as a label.",
    "governance_deferred_pending": "Calls waiting in a deferral queue, per target and method.",
    "governance_rules_generation": "How many rule sets this instance has applied.",
    "governance_queue_overloaded": (
        "1 while the queue-delay gate finds the service overloaded (the last interval's minimum "
        "queueing delay above its target, CoDel)."
    ),
    "governance_queue_min_delay_seconds": (
        "The smallest queueing delay of the queue-delay gate's last interval, seconds."
    ),
}
