"""Service level objectives: a small YAML file (per service, an availability and a latency
objective) turned into Prometheus recording rules and multi-window, multi-burn-rate alerts.

    python -m telemetry.slo rules slo/slos.yml > prometheus/rules/slo.yml

grpc-free: the model (:mod:`telemetry.slo.model`) and the generator (:mod:`telemetry.slo.rules`)
need PyYAML only. docs/observability.md, "SLOs and burn-rate alerts", explains the rules.
"""

from telemetry.slo.model import SloError, Slos, load_slos, parse_slos
from telemetry.slo.rules import render_rules, rules_document

__all__ = ["SloError", "Slos", "load_slos", "parse_slos", "render_rules", "rules_document"]
