"""Static checks of the demo stack's Prometheus and Grafana files: promtool accepts the config, the
rules and every PromQL expression of the dashboards; dashboards reference provisioned data sources
only and metrics the services export (or recording rules); the data sources link metrics, traces
and logs. The collector dashboard and the LogQL panels: test_observability_signals.py."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.logql import LOKI_INDEX_LABELS, parse_log_query
from stack.promql import (
    Expr,
    all_expressions,
    dashboard_expressions,
    dashboard_files,
    datasource_uids,
    load_dashboard,
    metric_names,
    panels,
    provisioned_datasources,
    provisioned_uids,
    rule_expressions,
    rule_files,
    run_promtool,
    strip_threshold,
    substitute,
)
from telemetry.panel.live import LiveQueries
from telemetry.panel.prometheus import Prometheus

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
RULE_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))

SERVICE_JOBS = {
    "gateway": ["gateway:9464"],
    "order": ["order:9464"],
    "inventory": ["inventory-1:9464", "inventory-2:9464"],
    "payment": ["payment:9464"],
    "recommendation": ["recommendation:9464"],
    "notification": ["notification:9464"],
    "loadgen": ["loadgen:9464"],
}
COMPOSE_ONLY_JOBS = {
    "otel-collector": ["otel-collector:8888"],
    "spanmetrics": ["otel-collector:8889"],
    "jaeger": ["jaeger:8888"],
}


def _histogram(name: str) -> list[str]:
    return [f"{name}_bucket", f"{name}_sum", f"{name}_count"]


# What the services export (the stack's contract), plus Prometheus's own `up`. No collector,
# spanmetrics or Jaeger metrics: the native stack has none of them.
KNOWN_METRICS = frozenset(
    [
        "up",
        *(
            name
            for side in ("server", "client")
            for name in (
                f"grpc_{side}_started_total",
                f"grpc_{side}_handled_total",
                *_histogram(f"grpc_{side}_handling_seconds"),
                f"grpc_{side}_msg_received_total",
                f"grpc_{side}_msg_sent_total",
                f"grpc_{side}_in_flight",
            )
        ),
        *_histogram("http_server_request_duration_seconds"),
        "governance_decisions_total",
        "governance_breaker_state",
        "governance_breaker_admitted_share",
        "governance_breaker_transitions_total",
        "governance_adaptive_limit",
        "governance_adaptive_in_flight",
        "governance_pressure",
        "governance_shedding",
        "governance_queue_overloaded",
        "governance_rules_generation",
        "governance_control_revision",
        "governance_control_rejected",
        "governance_cluster_limit_decisions_total",
        "governance_cluster_store_errors_total",
        "governance_cluster_store_fallbacks_total",
        "discovery_instances",
        "etcd_client_endpoint_info",
        "etcd_client_failovers_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "telemetry_spans_dropped_total",
        "telemetry_spans_export_failed_total",
        "telemetry_log_lines_dropped_total",
        "loadgen_requests_total",
        *_histogram("loadgen_request_duration_seconds"),
    ]
)


GRAFANA_BUILT_IN = "-- Grafana --"
"""Grafana's own data source (annotations by tag, e.g. the control panel's): always there."""


def dashboards() -> list[Path]:
    return dashboard_files(ROOT)


def expressions() -> list[Expr]:
    # The static checks cover the compose-only dashboards too.
    return all_expressions(ROOT, compose_only=True)


def recording_rule_names() -> set[str]:
    return {expr.source.rsplit(" ", 1)[1] for expr in expressions() if expr.kind == "record"}


def rules_of(path: Path) -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        yield from group["rules"]


# ---------------------------------------------------------------- Prometheus


def test_prometheus_config_passes_promtool(promtool: str) -> None:
    # Also loads every rule file the rule_files glob finds.
    run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)


def test_prometheus_config_has_the_contract_jobs() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SERVICE_JOBS) | set(COMPOSE_ONLY_JOBS) | {"registered"}
    # Services registered in etcd without a job of their own: the scrape-targets sidecar's http_sd
    # (the native launcher points the url at its own, on loopback).
    assert jobs["registered"] == {
        "job_name": "registered",
        "http_sd_configs": [{"url": "http://scrape-targets:9465/targets", "refresh_interval": "5s"}],
    }
    for name, targets in {**SERVICE_JOBS, **COMPOSE_ONLY_JOBS}.items():
        # The native launcher rewrites static targets: nothing else may feed a job.
        assert [sorted(c["targets"]) for c in jobs[name]["static_configs"]] == [sorted(targets)], name
        assert set(jobs[name]) <= {"job_name", "static_configs", "honor_labels"}, name
    assert jobs["spanmetrics"]["honor_labels"] is True


@pytest.mark.parametrize("path", rule_files(ROOT), ids=lambda p: p.name)
def test_rule_file_passes_promtool(promtool: str, path: Path) -> None:
    run_promtool(promtool, "check", "rules", path)


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "prometheus/tests/*.yml: promtool rule unit tests are missing"
    run_promtool(promtool, "test", "rules", *RULE_TESTS)


def test_rule_files_and_their_globs() -> None:
    names = [p.name for p in rule_files(ROOT)]
    assert names == ["alerts.yml", "recording.yml", "slo.yml"]
    # Unit tests live outside rules/, or Prometheus would load them as rule files.
    assert all(p.parent.name != "rules" for p in RULE_TESTS)


def test_recording_rules_are_named_level_metric_operations() -> None:
    for path in rule_files(ROOT):
        for rule in rules_of(path):
            if "record" in rule:
                assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_alerts_have_for_severity_and_annotations() -> None:
    alerts = [rule for path in rule_files(ROOT) for rule in rules_of(path) if "alert" in rule]
    assert len(alerts) >= 8
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for rule in alerts:
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_alert_signals_are_recording_rules_or_plain_expressions() -> None:
    records = recording_rule_names()
    for path in rule_files(ROOT):
        for expr in rule_expressions(path):
            if expr.kind == "alert":
                # The signal is what a dashboard plots and the end-to-end test runs.
                assert metric_names(expr.query), expr.source
                assert metric_names(expr.query) <= records | KNOWN_METRICS, expr.source


# ---------------------------------------------------------------- Grafana


def test_dashboards_with_unique_uids() -> None:
    names = {path.name for path in dashboards()}
    assert names == {
        "service-overview.json", "governance.json", "discovery.json", "runtime.json", "capacity.json",
        "collector.json", "slo.json", "service-map.json",
    }  # fmt: skip
    uids = [load_dashboard(path)["uid"] for path in dashboards()]
    assert all(uids), uids
    assert len(set(uids)) == len(uids), uids


@pytest.mark.parametrize("path", dashboard_files(ROOT), ids=lambda p: p.name)
def test_dashboard_settings(path: Path) -> None:
    board = load_dashboard(path)
    assert board.get("id") is None  # provisioning assigns ids; a fixed one clashes across instances
    assert board["title"]
    assert board["refresh"] == "5s"
    assert board["time"]["from"] == "now-15m"
    assert board["schemaVersion"] >= 39  # Grafana 11 and later
    panel_ids = [panel["id"] for panel in panels(board["panels"])]
    assert len(panel_ids) == len(set(panel_ids)), "panel ids must be unique within a dashboard"
    for panel in panels(board["panels"]):
        if panel["type"] != "row":
            assert panel.get("targets"), f"{path.name}: panel {panel['title']!r} has no query"
            assert all(t.get("expr", "").strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", dashboard_files(ROOT), ids=lambda p: p.name)
def test_dashboard_datasources_are_provisioned(path: Path) -> None:
    board = load_dashboard(path)
    provisioned = provisioned_uids(ROOT)
    datasource_variables = {
        v["name"]: v.get("query")
        for v in board.get("templating", {}).get("list", [])
        if v.get("type") == "datasource"
    }
    for uid in datasource_uids(board) - {GRAFANA_BUILT_IN}:
        variable = re.fullmatch(r"\$\{?(\w+)\}?", uid)
        if variable is not None:
            assert datasource_variables.get(variable.group(1)) == "prometheus", f"{path.name}: {uid}"
        else:
            assert uid in provisioned, f"{path.name}: data source uid {uid!r} is not provisioned"


def test_datasource_provisioning() -> None:
    sources = provisioned_datasources(ROOT)
    assert set(sources) == {"prometheus", "jaeger", "loki"}
    assert sources["prometheus"]["type"] == "prometheus"
    assert sources["prometheus"]["url"] == "http://prometheus:9090"
    assert sources["jaeger"]["type"] == "jaeger"
    assert sources["jaeger"]["url"] == "http://jaeger:16686"
    assert sources["loki"]["type"] == "loki"
    assert sources["loki"]["url"] == "http://loki:3100"
    assert [uid for uid, source in sources.items() if source.get("isDefault")] == ["prometheus"]
    # metric -> trace: exemplars
    destinations = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "jaeger"} in destinations
    assert all(d["datasourceUid"] in sources for d in destinations)
    # log -> trace: the trace_id structured metadata, read by name, opens the trace in Jaeger.
    [derived] = sources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherType"], derived["matcherRegex"]) == ("label", "trace_id")
    assert derived["datasourceUid"] == "jaeger"
    # `$$` is a literal `$` in provisioning files; a bare ${...} would be expanded from the env.
    assert derived["url"] == "$${__value.raw}"
    # span -> logs: that trace's lines in the span's service stream, filtered on the metadata
    # (the OTLP trace id is not in the line, so the default line filter would find nothing).
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki"
    assert to_logs["filterByTraceID"] is True
    assert {"key": "service.name", "value": "service_name"} in to_logs["tags"]
    assert to_logs["customQuery"] is True
    query = parse_log_query(
        to_logs["query"]
        .replace("$${__tags}", 'service_name="gateway"')
        .replace("$${__trace.traceId}", "4bf92f3577b34da6a3ce929d0e0e4736")
    )
    assert {m.label for m in query.selector} <= LOKI_INDEX_LABELS
    assert [(f.label, f.op) for f in query.filters] == [("trace_id", "=")]


def test_dashboard_provisioning() -> None:
    document = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    [provider] = document["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Telemetry demo"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_latency_panels_show_exemplars() -> None:
    board = load_dashboard(ROOT / "grafana/dashboards/service-overview.json")
    with_exemplars = [
        t["expr"] for p in panels(board["panels"]) for t in p.get("targets", []) if t.get("exemplar")
    ]
    # Exemplars come from the raw histogram, never from a recording rule.
    assert any("grpc_server_handling_seconds_bucket" in expr for expr in with_exemplars)


def test_capacity_dashboard_plots_the_capacity_tests_promql() -> None:
    """p99 against throughput for one chosen service, with the very queries the capacity runner
    (python -m telemetry.panel.capacity) reads per step."""
    board = load_dashboard(ROOT / "grafana/dashboards/capacity.json")
    [variable] = board["templating"]["list"]
    assert variable["name"] == "service" and not variable.get("multi") and not variable.get("includeAll")
    live = LiveQueries(Prometheus("http://unused.invalid"))
    rate = live.request_rate("$service", "$__rate_interval")
    served = live.goodput_rate("$service", "$__rate_interval")
    p99 = live.latency("$service", 0.99, "$__rate_interval")
    by_title = {panel["title"]: panel for panel in panels(board["panels"])}
    xy = by_title["p99 against throughput: $service"]
    assert xy["type"] == "xychart"
    assert [t["expr"] for t in xy["targets"]] == [served, p99]
    [series] = xy["options"]["series"]
    names = [t["legendFormat"] for t in xy["targets"]]
    assert [series["x"]["matcher"]["options"], series["y"]["matcher"]["options"]] == names
    every = {t["expr"] for panel in panels(board["panels"]) for t in panel.get("targets", [])}
    error_ratio = live.error_ratio("$service", "$__rate_interval")
    assert {rate, served, p99, error_ratio, live.cpu("$service", "$__rate_interval")} <= every


# ---------------------------------------------------------------- every expression


def test_expressions_found_everywhere() -> None:
    found = expressions()
    kinds = {expr.kind for expr in found}
    assert kinds == {"record", "alert", "panel", "variable", "annotation"}
    for path in dashboards():
        assert any(e.kind == "panel" for e in dashboard_expressions(path)), path.name
    for expr in found:
        assert expr.query.strip(), expr.source
        # Every Grafana variable substituted; a label_replace back-reference ("$1") stays.
        assert not re.search(r"\$(?!\d)", expr.query) and "[[" not in expr.query, expr.source


def test_every_expression_parses(promtool: str, tmp_path: Path) -> None:
    found = expressions()
    # As recording rules, promtool parses every expression with Prometheus's own parser.
    rules = [{"record": f"expr_{i:04d}", "expr": expr.query} for i, expr in enumerate(found)]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        failing = [
            f"{found[int(n)].source}: {found[int(n)].query}"
            for n in re.findall(r'"expr_(\d{4})"', done.stdout + done.stderr)
        ]
        pytest.fail("expressions promtool cannot parse:\n" + "\n".join(failing) + "\n" + done.stdout)


def test_every_metric_is_exported_or_recorded() -> None:
    allowed = KNOWN_METRICS | recording_rule_names()
    unknown = {
        f"{expr.source}: {sorted(metric_names(expr.query) - allowed)}"
        for expr in expressions()
        if not expr.compose_only and metric_names(expr.query) - allowed
    }
    listing = "\n".join(sorted(unknown))
    assert not unknown, f"metrics neither in the stack's contract nor recorded:\n{listing}"
    # And the list itself holds no typos: the rules and dashboards use most of it.
    used = set().union(*(metric_names(expr.query) for expr in expressions()))
    assert len(used & KNOWN_METRICS) >= 25


def test_dashboards_parse_as_json_objects() -> None:
    for path in dashboards():
        assert isinstance(json.loads(path.read_text()), dict), path.name


# ---------------------------------------------------------------- promql.py itself


@pytest.mark.parametrize(
    ("alert", "signal"),
    [
        ("x > 0.05", "x"),
        ("job:up:ratio < 1", "job:up:ratio"),
        ("x >= 2", "x"),
        ("x <= -1", "x"),
        ("x != 4", "x"),
        ("x == bool 1", "x"),
        (
            'sum by (job) (rate(a_total{code!="OK",le=~">1"}[1m])) > 0',
            'sum by (job) (rate(a_total{code!="OK",le=~">1"}[1m]))',
        ),
        ("(a > 1) > 0", "(a > 1)"),
        ("((x > 0.5))", "x"),
        ("a / b * 100 > 5 * 2", "a / b * 100"),
        (
            "histogram_quantile(0.99, sum by (le) (rate(h[1m]))) > 0.5",
            "histogram_quantile(0.99, sum by (le) (rate(h[1m])))",
        ),
        ("a > on(job) group_left b", "a"),
        ("x # note > 3\n  > 1", "x # note > 3"),
    ],
)
def test_strip_threshold(alert: str, signal: str) -> None:
    assert strip_threshold(alert) == signal


@pytest.mark.parametrize(
    "alert",
    ["x", "(x > 1) and y", "x > 1 and y > 2", "x > 1 unless y", "x >", "x > bool", "rate(x[1m] > 1"],
)
def test_strip_threshold_refuses_other_shapes(alert: str) -> None:
    with pytest.raises(ValueError):
        strip_threshold(alert)


def test_metric_names() -> None:
    query = (
        'histogram_quantile(0.5, sum by (job, le) (rate(a_bucket{job=~"x|y", le!="+Inf"}[5m:30s])))'
        " / on(job) group_left(instance) job:b:rate1m offset 1m"
        " or on() vector(0) + time() - max without (le) (c) and sum(d) by (e)"
        ' unless label_replace(f, "g", "$1", "h", "(.*)")'
    )
    assert metric_names(query) == {"a_bucket", "job:b:rate1m", "c", "d", "f"}


def test_substitute() -> None:
    variables = {"job": ".+", "instance": "a|b"}
    assert (
        substitute(
            'rate(x{job=~"$job",i=~"${instance:regex}",k=~"[[job]]"}[$__rate_interval]) offset $__range',
            variables,
        )
        == 'rate(x{job=~".+",i=~"a|b",k=~".+"}[1m]) offset 1m'
    )
    assert substitute('label_replace(x, "a", "$1", "b", "(.*)")', variables).count("$1") == 1
    with pytest.raises(KeyError):
        substitute('x{job=~"$jbo"}', variables)
