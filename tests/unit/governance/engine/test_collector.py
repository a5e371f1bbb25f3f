"""The governance metrics collector: its families, decision counts, breaker state gauges and
transitions, the adaptive limiter's gauges, and repeatable collection.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from engine.support import RULES, breaker_of, client_rules
from telemetry.governance.breaker import BreakerState
from telemetry.governance.engine import Governance


def collect(gov: Governance) -> dict[str, Metric]:
    return {family.name: family for family in gov.collector().collect()}


def samples(family: Metric) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


# -- collector ---------------------------------------------------------------------------------------


def test_collector_families(gov: Governance) -> None:
    gov.apply(RULES)
    families = collect(gov)
    assert set(families) == {
        "governance_decisions",
        "governance_breaker_transitions",
        "governance_rules_generation",
    }
    assert families["governance_decisions"].type == "counter"
    assert families["governance_breaker_transitions"].type == "counter"
    assert families["governance_rules_generation"].type == "gauge"
    assert samples(families["governance_rules_generation"]) == {(): 1.0}
    assert families["governance_decisions"].samples == []
    gov.apply(RULES)
    assert samples(collect(gov)["governance_rules_generation"]) == {(): 2.0}


def test_collector_counts_decisions(gov: Governance) -> None:
    gov.recorder.decision(None, "rate_limit", "rejected", "limit reached")
    gov.recorder.decision(None, "rate_limit", "rejected", "limit reached")
    decisions = collect(gov)["governance_decisions"]
    assert {
        (s.name, s.labels["mechanism"], s.labels["outcome"], s.value) for s in decisions.samples
    } >= {("governance_decisions_total", "rate_limit", "rejected", 2.0)}


def test_collector_breaker_gauges_and_transitions(gov: Governance) -> None:
    gov.apply(client_rules({"pkg.Svc/M": {"breaker": {"force": "open"}}, "pkg.Svc/N": {"breaker": {}}}))
    breaker_of(gov, "/pkg.Svc/M")
    breaker_of(gov, "/pkg.Svc/N")
    families = collect(gov)
    m = (("method", "/pkg.Svc/M"), ("target", "t:1"))
    n = (("method", "/pkg.Svc/N"), ("target", "t:1"))
    assert samples(families["governance_breaker_state"]) == {
        m: float(BreakerState.FORCED_OPEN),
        n: float(BreakerState.CLOSED),
    }
    assert samples(families["governance_breaker_admitted_share"]) == {m: 0.0, n: 1.0}
    transitions = [
        (s.name, s.labels, s.value) for s in families["governance_breaker_transitions"].samples
    ]
    assert transitions == [
        (
            "governance_breaker_transitions_total",
            {"target": "t:1", "method": "/pkg.Svc/M", "state": "forced_open"},
            1.0,
        )
    ]


def test_collector_adaptive_gauges(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True, "initial_limit": 20}})
    families = collect(gov)
    assert samples(families["governance_adaptive_limit"]) == {(): 20.0}
    assert samples(families["governance_adaptive_in_flight"]) == {(): 0.0}
    assert set(samples(families["governance_pressure"])) == {
        (("signal", "cpu"),),
        (("signal", "loop_lag"),),
    }
    shedding = samples(families["governance_shedding"])
    assert list(shedding.values()) == [0.0]
    gov.apply({})
    assert "governance_adaptive_limit" not in collect(gov)


def _iter_names(families: Iterator[Metric]) -> list[str]:
    return [family.name for family in families]


def test_collector_is_repeatable(gov: Governance) -> None:
    gov.apply({"adaptive": {"enabled": True}})
    collector = gov.collector()
    assert _iter_names(collector.collect()) == _iter_names(collector.collect())
