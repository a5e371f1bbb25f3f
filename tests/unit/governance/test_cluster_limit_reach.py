"""A cluster limit on ``*`` is the service's: it reaches methods whose own rule (a more specific
pattern, which replaces ``*``) has no limit, and they all draw from one limiter.

Found by benchmarks/capacity.py: the panel's Apply wrote ``{"*": 32}`` for order, whose
``PlaceOrder: {priority: critical}`` rule took PlaceOrder out of the limit entirely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telemetry.control.cluster_limits import ClusterLimit, mark_cluster_limits, split_cluster_limits
from telemetry.governance.engine import Governance
from telemetry.rpc.call import MethodInfo, RpcKind, Side


def assembled(
    doc: dict[str, Any], totals: Mapping[str, ClusterLimit | float], instances: int
) -> dict[str, Any]:
    mark_cluster_limits(doc, totals)
    split_cluster_limits(doc, instances)
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


def test_a_cluster_limit_reaches_methods_of_the_rules_given_in_code() -> None:
    """Live rules start from the code's rules serialised (``GovernanceRules.to_dict``), where a
    method without a limit says ``"rate_limit": None``: the cluster limit must still reach it
    (it did not: benchmarks/capacity.py's 2x phases ran with no limit at all)."""
    code = Governance({"server": {"methods": {"shop.Order/PlaceOrder": {"priority": "critical"}}}})
    doc = code.rules.to_dict()
    assert doc["server"]["methods"]["shop.Order/PlaceOrder"]["rate_limit"] is None
    gov = Governance(assembled(doc, {"*": 24}, instances=1), cpu=lambda: 0.0)
    place = limiter(gov, "/shop.Order/PlaceOrder")
    assert place is not None and place is limiter(gov, "/shop.Order/GetOrder")
    assert place.rate == 24


def test_a_cluster_burst_is_split_with_the_limit() -> None:
    doc: dict[str, Any] = {"server": {"methods": {"shop.Order/PlaceOrder": {"priority": "critical"}}}}
    limits = {"*": ClusterLimit(30.0, burst=5)}
    gov = Governance(assembled(doc, limits, instances=2), cpu=lambda: 0.0)
    place = limiter(gov, "/shop.Order/PlaceOrder")
    assert (place.rate, place.burst) == (15, 3)  # ceil(5 / 2): the instances together admit >= 5
    one = Governance(assembled({}, {"*": ClusterLimit(30.0, burst=5)}, instances=1), cpu=lambda: 0.0)
    assert limiter(one, "/shop.Order/Any").burst == 5
    default = Governance(assembled({}, {"*": 30.0}, instances=3), cpu=lambda: 0.0)
    assert limiter(default, "/shop.Order/Any").burst == 10  # the bucket's default: 1 s of the share


def test_a_cluster_limit_on_a_new_pattern_keeps_what_the_broader_entry_gave() -> None:
    """A cluster limit on a pattern with no entry creates one, which replaces ``*`` for its
    methods: it starts from ``*``'s entry (less its rate limit), so the panel's service cap and
    ``*``'s priority still reach them, and the cap stays one count."""
    cap = {"max_concurrent": 3, "shared": "*"}
    doc = {"server": {"methods": {"*": {"priority": "high", "bulkhead": cap,
                                        "rate_limit": {"limit": 5, "key": "peer"}}}}}  # fmt: skip
    gov = Governance(assembled(doc, {"a.S/*": 40}, instances=2), cpu=lambda: 0.0)
    plan = gov.server_plan(gov.snapshot(), MethodInfo("/a.S/M", RpcKind.UNARY, Side.SERVER))
    other = gov.server_plan(gov.snapshot(), MethodInfo("/b.T/M", RpcKind.UNARY, Side.SERVER))
    assert plan is not None and other is not None
    assert plan.instance("bulkhead") is other.instance("bulkhead") is not None  # one service cap
    assert gov.rules.server.methods["a.S/*"].priority == "high"
    own = gov.rules.server.methods["a.S/*"].rate_limit
    assert own is not None and own.key == "" and own.cluster_limit == 40  # the cluster's, not *'s
