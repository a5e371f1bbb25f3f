"""A cluster limit on ``*`` is the service's: it reaches methods whose own rule (a more specific
pattern, which replaces ``*``) has no limit, and they all draw from one limiter.

Found by benchmarks/capacity.py: the panel's Apply wrote ``{"*": 32}`` for order, whose
``PlaceOrder: {priority: critical}`` rule took PlaceOrder out of the limit entirely."""

from __future__ import annotations

from typing import Any

from telemetry.control.live_rules import _mark_cluster_limits, _split_cluster_limits
from telemetry.governance.engine import Governance
from telemetry.rpc.call import MethodInfo, RpcKind, Side


def assembled(doc: dict[str, Any], totals: dict[str, float], instances: int) -> dict[str, Any]:
    _mark_cluster_limits(doc, totals)
    _split_cluster_limits(doc, instances)
    return doc


def limiter(gov: Governance, method: str) -> Any:
    plan = gov.server_plan(gov.snapshot(), MethodInfo(method, RpcKind.UNARY, Side.SERVER))
    assert plan is not None
    return plan.instance("rate_limit")


def test_a_cluster_limit_on_star_is_shared_by_methods_with_their_own_rules() -> None:
    doc = {
        "server": {
            "methods": {
                "shop.Order/PlaceOrder": {"priority": "critical"},
                "shop.Order/GetOrder": {"rate_limit": {"limit": 7}},  # its own limit stays
            }
        }
    }
    gov = Governance(assembled(doc, {"*": 30}, instances=2), cpu=lambda: 0.0)
    place, other = limiter(gov, "/shop.Order/PlaceOrder"), limiter(gov, "/shop.Other/Any")
    assert place is not None and place is other  # one limiter: the service's whole limit
    assert place.rate == 15  # the total split across the two instances
    assert limiter(gov, "/shop.Order/GetOrder").rate == 7
    assert gov.rules.server.methods["shop.Order/PlaceOrder"].priority == "critical"


def test_a_service_pattern_reaches_only_its_own_methods() -> None:
    doc = {"server": {"methods": {"a.S/M": {"write": True}, "b.T/M": {"write": True}}}}
    gov = Governance(assembled(doc, {"a.S/*": 10}, instances=1), cpu=lambda: 0.0)
    assert limiter(gov, "/a.S/M") is limiter(gov, "/a.S/Other") is not None
    assert limiter(gov, "/b.T/M") is None
