"""The committed SLO rules: generated from slo/slos.yml (never drifting from it), accepted by
promtool, and their promtool unit tests (prometheus/tests/slo_test.yml) pass; the SLO dashboard
plots every alert's signal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from stack.promql import load_dashboard, panels, run_promtool
from telemetry.slo.model import load_slos
from telemetry.slo.rules import FAULT_CODES, TIERS, render_rules

ROOT = Path(__file__).resolve().parents[2]
SLO_FILE = "slo/slos.yml"
RULES = ROOT / "prometheus" / "rules" / "slo.yml"
RULE_TESTS = ROOT / "prometheus" / "tests" / "slo_test.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "slo.json"
DEMO_JOBS = {"gateway", "order", "inventory", "payment", "recommendation", "notification"}


def test_committed_rules_are_the_generators_output() -> None:
    expected = render_rules(load_slos(ROOT / SLO_FILE), SLO_FILE)
    assert RULES.read_text() == expected, (
        f"{RULES.relative_to(ROOT)} is stale: run "
        f"python -m telemetry.slo rules {SLO_FILE} > prometheus/rules/slo.yml"
    )


def test_the_cli_prints_the_committed_rules() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "telemetry.slo", "rules", SLO_FILE],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == RULES.read_text()
    assert done.stdout.startswith(f"# Generated from {SLO_FILE} by `python -m telemetry.slo rules")


def test_the_cli_refuses_an_invalid_file_with_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "slos.yml"
    bad.write_text("slos:\n  payment:\n    protocol: grpc\n    availability: {objective: 1.2}\n")
    done = subprocess.run(
        [sys.executable, "-m", "telemetry.slo", "rules", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert "slos.payment.availability.objective: must be between 0.9 and 0.99999, got 1.2" in done.stderr


def test_rules_pass_promtool_check(promtool: str) -> None:
    run_promtool(promtool, "check", "rules", RULES)


def test_slo_rule_unit_tests_pass(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", RULE_TESTS)


def test_the_demo_has_an_slo_per_service() -> None:
    slos = load_slos(ROOT / SLO_FILE)
    assert {service.job for service in slos.services} == DEMO_JOBS
    assert all(s.availability and s.latency for s in slos.services)
    protocols = {service.job: service.protocol for service in slos.services}
    assert protocols.pop("gateway") == "http"  # the HTTP API; the others serve gRPC
    assert set(protocols.values()) == {"grpc"}


def test_faults_are_the_ones_the_red_rules_count() -> None:
    recording = (ROOT / "prometheus" / "rules" / "recording.yml").read_text()
    assert re.findall(r'grpc_code=~"([^"]+)"', recording) == [FAULT_CODES]


def test_dashboard_plots_every_alert_signal_with_its_threshold() -> None:
    board = load_dashboard(DASHBOARD)
    targets = {t["expr"]: panel for panel in panels(board["panels"]) for t in panel.get("targets", [])}
    for tier in TIERS:
        [panel] = [panel for expr, panel in targets.items() if tier.signal in expr]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert tier.factor in [step["value"] for step in steps], tier.alert
    for recorded in ("job_slo:slo_objective:ratio", "job_slo:slo_error_budget_remaining:ratio_rate30d"):
        assert any(recorded in expr for expr in targets), recorded


def test_alerts_in_the_rules_are_the_tiers() -> None:
    document = yaml.safe_load(RULES.read_text())
    alerts = [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]
    assert [(a["alert"], a["expr"]) for a in alerts] == [
        (tier.alert, f"{tier.signal} > {tier.factor!r}") for tier in TIERS
    ]


def test_rule_unit_tests_evaluate_every_group_in_order() -> None:
    # promtool evaluates groups left out of group_eval_order in a random order: flaky tests.
    groups = [group["name"] for group in yaml.safe_load(RULES.read_text())["groups"]]
    assert yaml.safe_load(RULE_TESTS.read_text())["group_eval_order"] == groups
