"""What the loopback governance tests share: the Echo service's name, a fixed-window limit rule for
every method, and a service's count of governance decisions.
"""

from __future__ import annotations

from typing import Any

from helpers import metric_value
from prometheus_client import CollectorRegistry

ECHO = "telemetry.test.Echo"


def limit_rules(limit: int = 1, **extra: Any) -> dict[str, Any]:
    method_rules: dict[str, Any] = {
        "rate_limit": {"algorithm": "fixed_window", "limit": limit, "window": 3600}
    }
    method_rules.update(extra)
    return {"server": {"methods": {"*": method_rules}}}


def decisions(registry: CollectorRegistry, mechanism: str, outcome: str, method: str = "Unary") -> float:
    return metric_value(
        registry,
        "governance_decisions_total",
        mechanism=mechanism,
        grpc_service=ECHO,
        grpc_method=method,
        outcome=outcome,
    )
