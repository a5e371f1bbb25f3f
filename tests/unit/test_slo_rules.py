"""The SLO rules generator: the SRE workbook's burn-rate tiers, expressions per protocol, rule
names and alerts the repo's rule checks accept, YAML that reads back as the document, and the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry.slo.__main__ import main
from telemetry.slo.model import AvailabilitySlo, LatencySlo, ServiceSlo, Slos
from telemetry.slo.rules import BUDGET_WINDOW, FAULT_CODES, TIERS, WINDOWS, render_rules, rules_document

SLOS = Slos(
    (
        ServiceSlo("payment", "grpc", AvailabilitySlo(0.999), LatencySlo(0.99, 1.0)),
        ServiceSlo("gateway", "http", AvailabilitySlo(0.99), LatencySlo(0.95, 0.25)),
    )
)


def rules() -> list[dict[str, Any]]:
    return [rule for group in rules_document(SLOS)["groups"] for rule in group["rules"]]


def record(name: str, job: str, slo: str) -> str:
    [rule] = [r for r in rules() if r.get("record") == name and r["labels"] == {"job": job, "slo": slo}]
    return str(rule["expr"])


def test_burn_rate_tiers_are_the_workbooks() -> None:
    # "Alerting on SLOs", table 5-8: windows, factors, budget spent, page or ticket.
    assert [(t.long, t.short, t.factor, t.action) for t in TIERS] == [
        ("1h", "5m", 14.4, "page"),
        ("6h", "30m", 6.0, "page"),
        ("1d", "2h", 3.0, "ticket"),
        ("3d", "6h", 1.0, "ticket"),
    ]
    assert [round(t.budget_spent, 6) for t in TIERS] == [0.02, 0.05, 0.1, 0.1]
    assert BUDGET_WINDOW == "30d"
    assert set(WINDOWS) == {t.long for t in TIERS} | {t.short for t in TIERS}


def test_every_rule_follows_the_repos_conventions() -> None:
    for rule in rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", str(rule["record"])), rule
        else:
            assert rule["for"] and rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["labels"]["severity"] in {"critical", "warning"}


def test_alerts_page_or_ticket_on_their_signal() -> None:
    alerts = {str(r["alert"]): r for r in rules() if "alert" in r}
    for tier in TIERS:
        alert = alerts[tier.alert]
        assert alert["expr"] == f"{tier.signal} > {tier.factor!r}"  # <signal> > <threshold>
        assert alert["labels"] == {
            "severity": "critical" if tier.action == "page" else "warning",
            "slo_severity": tier.action,
        }
    signals = {str(r["record"]): str(r["expr"]) for r in rules() if "record" in r}
    assert signals["job_slo:slo_burn_rate:min_rate1h_rate5m"] == (
        "job_slo:slo_burn_rate:rate1h <= job_slo:slo_burn_rate:rate5m or job_slo:slo_burn_rate:rate5m"
    )
    assert signals["job_slo:slo_burn_rate:rate6h"] == (
        "job_slo:sli_error:ratio_rate6h / (1 - job_slo:slo_objective:ratio)"
    )


def test_every_window_is_recorded_for_every_slo() -> None:
    for job, slo in [("payment", "availability"), ("payment", "latency"), ("gateway", "latency")]:
        for window in (*WINDOWS, BUDGET_WINDOW):
            assert f"[{window}]" in record(f"job_slo:sli_error:ratio_rate{window}", job, slo)
    assert record("job_slo:slo_objective:ratio", "payment", "availability") == "vector(0.999)"
    assert record("job_slo:slo_objective:ratio", "gateway", "latency") == "vector(0.95)"


def test_grpc_availability_counts_server_faults_and_is_0_without_them() -> None:
    expr = record("job_slo:sli_error:ratio_rate5m", "payment", "availability")
    assert f'grpc_server_handled_total{{job="payment",grpc_code=~"{FAULT_CODES}"}}[5m]' in expr
    assert 'or sum by (job) (rate(grpc_server_handled_total{job="payment"}[5m])) * 0' in expr


def test_http_availability_counts_5xx() -> None:
    expr = record("job_slo:sli_error:ratio_rate1h", "gateway", "availability")
    assert (
        'http_server_request_duration_seconds_count{job="gateway",http_response_status_code=~"5.."}'
        in expr
    )
    assert "grpc" not in expr


def test_latency_reads_the_bucket_as_the_client_writes_its_le() -> None:
    grpc = record("job_slo:sli_error:ratio_rate5m", "payment", "latency")
    assert 'grpc_server_handling_seconds_bucket{job="payment",le="1.0"}[5m]' in grpc
    assert 'grpc_server_handling_seconds_count{job="payment"}[5m]' in grpc
    http = record("job_slo:sli_error:ratio_rate5m", "gateway", "latency")
    assert 'http_server_request_duration_seconds_bucket{job="gateway",le="0.25"}[5m]' in http


def test_the_text_reads_back_as_the_document() -> None:
    text = render_rules(SLOS, "slo/slos.yml")
    assert text.startswith(
        "# Generated from slo/slos.yml by `python -m telemetry.slo rules slo/slos.yml`"
    )
    assert yaml.safe_load(text) == rules_document(SLOS)
    assert "&id" not in text and "*id" not in text  # no YAML anchors for shared label maps
    assert "expr: |\n" in text  # multi-line PromQL as literal blocks


def test_the_cli_prints_the_rules_or_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yml"
    good.write_text("slos:\n  payment:\n    protocol: grpc\n    availability: {objective: 0.999}\n")
    assert main(["rules", str(good)]) == 0
    out = capsys.readouterr().out
    assert "SloBudgetBurnPage1h" in out and 'job="payment"' in out
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "slos:\n  payment:\n    protocol: grpc\n    latency: {objective: 0.99, threshold_seconds: 0.3}\n"
    )
    assert main(["rules", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(
        "error: slos.payment.latency.threshold_seconds: must be a histogram bucket"
    )


def test_the_package_imports_where_grpc_cannot() -> None:
    script = (
        "import sys\n"
        "sys.modules['grpc'] = None  # any import of grpc now raises ImportError\n"
        "import telemetry.slo, telemetry.slo.__main__\n"
        "slos = telemetry.slo.parse_slos({'slos': {'a': {'protocol': 'grpc', "
        "'availability': {'objective': 0.99}}}})\n"
        "print(len(telemetry.slo.render_rules(slos, 'x.yml')) > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
