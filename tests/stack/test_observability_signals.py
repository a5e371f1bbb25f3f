"""Static checks of what the native stack cannot run: the expressions that read only metrics the
collector makes (its own telemetry, the collector dashboard; the servicegraph connector's edges, the
trace-based service map) name real metrics and are left out of the native end-to-end run with the
LogQL panels; their LogQL is well-formed and filters on the labels Loki makes from the collector's
OTLP logs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stack.logql import LOKI_INDEX_LABELS, LOKI_STRUCTURED_METADATA, parse_log_query
from stack.promql import (
    Expr,
    all_expressions,
    all_log_queries,
    load_dashboard,
    log_queries,
    metric_names,
    panels,
    substitute,
)

ROOT = Path(__file__).resolve().parents[2]

# The collector's own metrics (Prometheus job otel-collector, :8888), as otelcol-contrib 0.136.0
# exports them: with service.telemetry.metrics.readers configured, counters carry `_total` (since
# 0.120, open-telemetry/opentelemetry-collector#12458), gauges and {unit} annotations add nothing.
# Names from the release's receiver/receiverhelper, exporter/exporterhelper and
# processor/processorhelper documentation.md. Only the compose-only dashboards may use them.
COLLECTOR_METRICS = frozenset(
    [
        *(
            f"otelcol_{side}_{outcome}_{item}_total"
            for item in ("spans", "metric_points", "log_records")
            for side, outcomes in (
                ("receiver", ("accepted", "refused", "failed")),
                ("exporter", ("sent", "send_failed", "enqueue_failed")),
            )
            for outcome in outcomes
        ),
        "otelcol_exporter_queue_size",
        "otelcol_exporter_queue_capacity",
        "otelcol_processor_incoming_items_total",
        "otelcol_processor_outgoing_items_total",
    ]
)


# What the servicegraph connector of otelcol-contrib 0.136.0 writes through the Prometheus exporter
# (connector/servicegraphconnector/README.md of that release): edges client -> server. Only
# compose-only expressions may use them.
SERVICE_GRAPH_METRICS = frozenset(
    {"traces_service_graph_request_total", "traces_service_graph_request_failed_total"}
    | {
        f"traces_service_graph_request_{side}_seconds_{part}"
        for side in ("server", "client")
        for part in ("bucket", "sum", "count")
    }
)


def expressions() -> list[Expr]:
    return all_expressions(ROOT, compose_only=True)


def test_compose_only_expressions_read_only_what_the_collector_makes() -> None:
    # Left out of the native stack's end-to-end run, so nothing the native stack could check may
    # hide in them: every name is one the collector makes, the collector's own telemetry selected
    # by its job (the spanmetrics job carries the services' span metrics too).
    compose_only = [expr for expr in expressions() if expr.compose_only]
    known = COLLECTOR_METRICS | SERVICE_GRAPH_METRICS
    for expr in compose_only:
        names = metric_names(expr.query)
        assert names and names <= known, f"{expr.source}: {sorted(names - known)}"
        if names & COLLECTOR_METRICS:
            assert 'job="otel-collector"' in expr.query, f"{expr.source}: select the collector's job"
    # The whole collector dashboard is compose-only, and so is the trace-based map.
    sources = {expr.source for expr in compose_only}
    collector = [e for e in expressions() if e.source.startswith("collector.json:")]
    assert collector and all(e.compose_only for e in collector)
    assert any(source.startswith("service-map.json:") for source in sources)
    # The lists hold no typos: the compose-only expressions use every name in them but the
    # histograms' parts a map does not need.
    used = set().union(*(metric_names(expr.query) for expr in compose_only))
    assert used >= COLLECTOR_METRICS, sorted(COLLECTOR_METRICS - used)
    assert "traces_service_graph_request_total" in used


def test_native_stack_runs_neither_compose_only_nor_log_queries() -> None:
    native = all_expressions(ROOT)
    assert native and not any(expr.compose_only for expr in native)
    assert not any(name.startswith("otelcol_") for expr in native for name in metric_names(expr.query))
    every = expressions()
    assert set(native) == {expr for expr in every if not expr.compose_only}
    # LogQL is not PromQL: neither the static PromQL checks nor Prometheus see it.
    logs = {query.query for query in all_log_queries(ROOT)}
    assert logs and not logs & {expr.query for expr in every}


def test_log_panels_filter_on_the_labels_loki_makes_from_otlp() -> None:
    path = ROOT / "grafana/dashboards/service-overview.json"
    board = load_dashboard(path)
    [query] = log_queries(path)
    parsed = parse_log_query(query.query)  # raises on malformed LogQL
    # The stream: service.name as Loki indexes it, so the Service variable (Prometheus job names,
    # the services' service.name) picks the same services here.
    assert [(m.label, m.op) for m in parsed.selector] == [("service_name", "=~")]
    # The level: the OTLP severity text, kept as structured metadata.
    assert [(f.label, f.op) for f in parsed.filters] == [("severity_text", "=~")]
    [panel] = [p for p in panels(board["panels"]) if p["type"] == "logs"]
    [target] = panel["targets"]
    assert target["datasource"] == {"type": "loki", "uid": "loki"}
    assert '{service_name=~"$job"}' in target["expr"] and "$level" in target["expr"]
    level = next(v for v in board["templating"]["list"] if v["name"] == "level")
    # "All" must keep lines without a severity (an empty severity_text matches .*).
    assert level["includeAll"] and re.fullmatch(level["allValue"], "")
    # Each severity text the services send (the logs data model's short names) has an option.
    [severity] = parse_log_query(substitute(target["expr"], {"job": ".+", "level": "{}"})).filters
    for text in ("DEBUG", "INFO", "WARN", "ERROR", "FATAL"):
        assert any(
            re.fullmatch(severity.value.replace("{}", option), text)
            for option in level["query"].split(",")
        ), f"no level option selects severity_text {text}"
    for query in all_log_queries(ROOT):
        parsed = parse_log_query(query.query)
        assert {m.label for m in parsed.selector} <= LOKI_INDEX_LABELS, query.source
        assert {f.label for f in parsed.filters} <= LOKI_INDEX_LABELS | LOKI_STRUCTURED_METADATA


@pytest.mark.parametrize(
    "query",
    [
        '{service_name=~".+"} | severity_text=~"(?i)(.*).*"',
        '{service_name="a,}", x!="b"} |= "say \\"hi\\"" | trace_id="abc"',
    ],
)
def test_parse_log_query_accepts(query: str) -> None:
    assert parse_log_query(query).selector


@pytest.mark.parametrize(
    "query",
    [
        '{service_name=~".*"}',  # every matcher matches "": Loki refuses it
        'sum(rate({a="b"}[1m]))',  # a metric query
        '{a="b"} | json',  # a parser stage: extend the parser first
        '{a="b"} | x=~"("',  # a bad regex
        '{a="b"',
        "{}",
    ],
)
def test_parse_log_query_refuses(query: str) -> None:
    with pytest.raises(ValueError):
        parse_log_query(query)
