"""SLOs to a Prometheus rules document: error ratios per window, burn rates, the error budget left,
and multi-window, multi-burn-rate alerts after the Google SRE workbook's "Alerting on SLOs"
(https://sre.google/workbook/alerting-on-slos/), the scheme Sloth and Pyrra generate too.

Recorded series (``level:metric:operations``; every one carries ``job`` and ``slo``, the latter
``availability`` or ``latency``):

* ``job_slo:slo_objective:ratio``: the objective, a constant (0.999);
* ``job_slo:sli_error:ratio_rate<w>``: share of bad calls over each window ``w``;
* ``job_slo:slo_burn_rate:rate<w>``: that share over the error budget, ``1 - objective``: at 1 the
  budget lasts exactly the 30 days, at 14.4 it is gone in 50 hours;
* ``job_slo:slo_error_budget_remaining:ratio_rate30d``: 1 - spent share of the 30-day budget;
* ``job_slo:slo_burn_rate:min_rate<long>_rate<short>``: the lower of a tier's two burn rates, the
  alert's signal: above the tier's factor exactly when both windows are (the workbook's ``and``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from telemetry.slo.model import ServiceSlo, Slos

__all__ = [
    "BUDGET_WINDOW",
    "FAULT_CODES",
    "TIERS",
    "WINDOWS",
    "BurnTier",
    "render_rules",
    "rules_document",
]

# Server faults only, as prometheus/rules/recording.yml counts them: a client's mistake
# (InvalidArgument, NotFound ...) or governance answering (ResourceExhausted) spends no budget.
FAULT_CODES = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"
HTTP_FAULTS = "5.."
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BUDGET_WINDOW = "30d"
BUDGET_HOURS = 30 * 24
# The repo's rule checks want a `for` on every alert: a minute rides out one odd evaluation (a
# counter reset, a late scrape) and adds at most that to the workbook's detection times.
FOR = "1m"


@dataclass(frozen=True)
class BurnTier:
    """One row of the workbook's table: alert when both windows burn faster than ``factor``."""

    alert: str
    long: str
    short: str
    long_hours: float
    factor: float
    action: Literal["page", "ticket"]

    @property
    def budget_spent(self) -> float:
        """Share of the 30-day budget one long window at ``factor`` spends (2% for 14.4x 1h)."""
        return self.factor * self.long_hours / BUDGET_HOURS

    @property
    def signal(self) -> str:
        return f"job_slo:slo_burn_rate:min_rate{self.long}_rate{self.short}"


# The workbook's recommended thresholds for a 30-day SLO: 2% of the budget in 1h or 5% in 6h pages
# someone; 10% in 1d or in 3d opens a ticket. Short windows (1/12 of the long one) make an alert
# stop soon after the errors do.
TIERS = (
    BurnTier("SloBudgetBurnPage1h", "1h", "5m", 1, 14.4, "page"),
    BurnTier("SloBudgetBurnPage6h", "6h", "30m", 6, 6.0, "page"),
    BurnTier("SloBudgetBurnTicket1d", "1d", "2h", 24, 3.0, "ticket"),
    BurnTier("SloBudgetBurnTicket3d", "3d", "6h", 72, 1.0, "ticket"),
)
# Pyrra's mapping: pages are critical, tickets warnings (the repo's severities); slo_severity
# keeps the workbook's words, as Sloth's sloth_severity label does.
SEVERITY = {"page": "critical", "ticket": "warning"}


def rules_document(slos: Slos) -> dict[str, Any]:
    """The rules as a Prometheus rule file's structure."""
    groups: list[dict[str, Any]] = [
        {"name": f"slo_{service.job}", "rules": _service_rules(service)} for service in slos.services
    ]
    groups.append({"name": "slo_burn_rates", "rules": _burn_rules()})
    groups.append({"name": "slo_alerts", "rules": [_alert(tier) for tier in TIERS]})
    return {"groups": groups}


def render_rules(slos: Slos, source: str) -> str:
    """The rule file's text: a header saying how it was made, then the rules."""
    header = (
        f"# Generated from {source} by `python -m telemetry.slo rules {source}`: edit the SLO\n"
        "# file and regenerate, never this file (tests/stack/test_slo_rules.py checks they agree).\n"
        '# Multi-window, multi-burn-rate alerts: Google SRE workbook, "Alerting on SLOs",\n'
        "# https://sre.google/workbook/alerting-on-slos/ ; docs/observability.md explains them.\n"
    )
    body = yaml.dump(
        rules_document(slos), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=False
    )
    return header + body


def _service_rules(service: ServiceSlo) -> list[dict[str, Any]]:
    objectives = {
        "availability": service.availability.objective if service.availability else None,
        "latency": service.latency.objective if service.latency else None,
    }
    rules: list[dict[str, Any]] = []
    for slo, objective in objectives.items():
        if objective is None:
            continue
        # The job as a rule label too: vector() has none, and promtool wants rules told apart.
        labels = {"job": service.job, "slo": slo}
        rules.append(
            {"record": "job_slo:slo_objective:ratio", "expr": f"vector({objective!r})", "labels": labels}
        )
        for window in (*WINDOWS, BUDGET_WINDOW):
            expr = _availability(service, window) if slo == "availability" else _latency(service, window)
            rules.append(
                {"record": f"job_slo:sli_error:ratio_rate{window}", "expr": expr, "labels": labels}
            )
    return rules


def _availability(service: ServiceSlo, window: str) -> str:
    if service.protocol == "grpc":
        metric, faults = "grpc_server_handled_total", f'grpc_code=~"{FAULT_CODES}"'
    else:
        metric, faults = (
            "http_server_request_duration_seconds_count",
            f'http_response_status_code=~"{HTTP_FAULTS}"',
        )
    job = f'job="{service.job}"'
    total = f"sum by (job) (rate({metric}{{{job}}}[{window}]))"
    # A fault counter appears with its first fault: `or total * 0` makes the ratio 0, not absent.
    errors = f"sum by (job) (rate({metric}{{{job},{faults}}}[{window}]))"
    return f"(\n  {errors}\n  or {total} * 0\n)\n/ {total}\n"


def _latency(service: ServiceSlo, window: str) -> str:
    assert service.latency is not None
    histogram = (
        "grpc_server_handling_seconds"
        if service.protocol == "grpc"
        else "http_server_request_duration_seconds"
    )
    job = f'job="{service.job}"'
    # The bucket's `le` as the client library writes it (0.1, 1.0, 10.0): Python's repr of the float.
    le = repr(float(service.latency.threshold_seconds))
    fast = f'sum by (job) (rate({histogram}_bucket{{{job},le="{le}"}}[{window}]))'
    total = f"sum by (job) (rate({histogram}_count{{{job}}}[{window}]))"
    return f"1 - (\n  {fast}\n  / {total}\n)\n"


def _burn_rules() -> list[dict[str, Any]]:
    budget = "(1 - job_slo:slo_objective:ratio)"
    rules: list[dict[str, Any]] = [
        {
            "record": f"job_slo:slo_burn_rate:rate{window}",
            "expr": f"job_slo:sli_error:ratio_rate{window} / {budget}",
        }
        for window in WINDOWS
    ]
    rules.append(
        {
            "record": f"job_slo:slo_error_budget_remaining:ratio_rate{BUDGET_WINDOW}",
            "expr": f"1 - job_slo:sli_error:ratio_rate{BUDGET_WINDOW} / {budget}",
        }
    )
    for tier in TIERS:
        long, short = f"job_slo:slo_burn_rate:rate{tier.long}", f"job_slo:slo_burn_rate:rate{tier.short}"
        # The lower of the two, per (job, slo): `long <= short` keeps long where it is the lower,
        # `or short` fills in the rest (set operators match on every label but the name).
        rules.append({"record": tier.signal, "expr": f"{long} <= {short} or {short}"})
    return rules


def _alert(tier: BurnTier) -> dict[str, Any]:
    where = f"over both the last {tier.long} and the last {tier.short}"
    return {
        "alert": tier.alert,
        "expr": f"{tier.signal} > {tier.factor!r}",
        "for": FOR,
        "labels": {"severity": SEVERITY[tier.action], "slo_severity": tier.action},
        "annotations": {
            "summary": (
                "{{ $labels.job }}: {{ $labels.slo }} error budget burning "
                f"{{{{ $value | humanize }}}}x ({tier.long} and {tier.short} windows)"
            ),
            "description": (
                "The {{ $labels.slo }} SLO of {{ $labels.job }} has been burning its error budget at "
                f"{tier.factor:g}x or more {where} (burn rate = error ratio / (1 - objective); at 1x "
                f"the budget lasts the 30 days): {tier.long} at {tier.factor:g}x spends "
                f"{tier.budget_spent:.0%} of it. "
                + ("Page: act now." if tier.action == "page" else "Ticket: look into it within the day.")
                + " The SLO dashboard shows the burn rate per window."
            ),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, readable in the committed file."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared label dicts written out each time, never as &anchors

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indented lists, as the hand-written rule files


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)
