"""A call that read the rules just before a swap resolves its plan against the old snapshot: the
mechanisms it builds for rules that are gone are its own, never kept beside the new ones."""

from __future__ import annotations

from telemetry.governance.engine import Governance
from telemetry.rpc.call import MethodInfo, RpcKind, Side

INFO = MethodInfo("/pkg.Svc/M", RpcKind.UNARY, Side.CLIENT)


def breaker_rules(threshold: float) -> dict[str, object]:
    return {"client": {"methods": {"*": {"breaker": {"failure_rate_threshold": threshold}}}}}


def test_a_plan_resolved_from_an_old_snapshot_does_not_bring_a_pruned_breaker_back() -> None:
    gov = Governance(breaker_rules(0.5), cpu=lambda: 0.0)
    old = gov.snapshot()  # a call reads the rules ...
    gov.apply(breaker_rules(0.25))  # ... they change before it resolves its plan
    stale = gov.client_plan(old, INFO, "t:1")
    current = gov.client_plan(gov.snapshot(), INFO, "t:1")
    assert stale is not None and current is not None
    assert stale.instance("breaker") is not current.instance("breaker")
    breakers = list(gov.breakers())
    assert [(target, method) for target, method, _ in breakers] == [("t:1", "/pkg.Svc/M")]
    assert breakers[0][2] is current.instance("breaker")
