"""What the governance engine's tests share: one small rule set, rule builders, and the plans and
mechanisms a Governance resolves for a method (and target).
"""

from __future__ import annotations

from typing import Any

from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.engine import ClientPlan, Governance, ServerPlan
from telemetry.governance.fallback import FallbackPlan
from telemetry.rpc.call import MethodInfo, RpcKind, Side

RULES: dict[str, Any] = {
    "server": {"methods": {"pkg.Svc/M": {"rate_limit": {"algorithm": "fixed_window", "limit": 2}}}},
    "client": {"methods": {"*": {"breaker": {"failure_rate_threshold": 0.25}}}},
}


def server_info(method: str = "/pkg.Svc/M") -> MethodInfo:
    return MethodInfo(method, RpcKind.UNARY, Side.SERVER)


def client_info(method: str = "/pkg.Svc/M") -> MethodInfo:
    return MethodInfo(method, RpcKind.UNARY, Side.CLIENT)


def limit_rule(limit: float, algorithm: str = "fixed_window") -> dict[str, Any]:
    return {"rate_limit": {"algorithm": algorithm, "limit": limit}}


def server_rules(methods: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"server": {"methods": methods}, **extra}


def client_rules(methods: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"client": {"methods": methods}, **extra}


def splan(gov: Governance, method: str = "/pkg.Svc/M") -> ServerPlan:
    plan = gov.server_plan(gov.snapshot(), server_info(method))
    assert plan is not None
    return plan


def cplan(gov: Governance, method: str = "/pkg.Svc/M", target: str = "t:1") -> ClientPlan:
    plan = gov.client_plan(gov.snapshot(), client_info(method), target)
    assert plan is not None
    return plan


def limiter_of(gov: Governance, method: str = "/pkg.Svc/M") -> Any:
    limiter = splan(gov, method).instance("rate_limit")
    assert limiter is not None
    return limiter


def breaker_of(gov: Governance, method: str = "/pkg.Svc/M", target: str = "t:1") -> CircuitBreaker:
    breaker: CircuitBreaker | None = cplan(gov, method, target).instance("breaker")
    assert breaker is not None
    return breaker


def admitted(limiter: Any, attempts: int) -> int:
    return sum(bool(limiter.try_acquire()) for _ in range(attempts))


def fallback_of(gov: Governance, method: str = "/pkg.Svc/M") -> FallbackPlan:
    fallback = splan(gov, method).fallback
    assert fallback is not None
    return fallback
