"""Brownout: a set share of calls refused on purpose, deterministic under a scripted random source."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from telemetry.governance.brownout import Brownout
from telemetry.governance.engine import Governance
from telemetry.governance.gate import PASS, admit
from telemetry.rpc.call import MethodInfo, RpcKind, Side


def scripted(*values: float) -> Callable[[], float]:
    draws = iter(values)
    return lambda: next(draws)


class NoEnv:
    sleep = None
    defer = None

    def key(self, call: object, source: str) -> str:
        return ""

    def queue_delay(self) -> float | None:
        return None


def test_a_call_is_refused_when_its_draw_falls_under_the_share() -> None:
    brownout = Brownout(0.25, random=scripted(0.1, 0.3, 0.249, 0.25, 0.9))
    assert [brownout.allow(None, NoEnv()) for _ in range(5)] == [None, PASS, None, PASS, PASS]
    assert brownout.refusal() == ("25% of calls", 1.0)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        Brownout(share)


def test_the_engine_puts_it_before_the_rate_limit_and_keeps_it_while_the_rule_stands() -> None:
    gov = Governance(random=scripted(*[0.5] * 10), cpu=lambda: 0.0)
    rules = {"server": {"methods": {"*": {"brownout": {"share": 0.2}, "rate_limit": {"limit": 1}}}}}
    gov.apply(rules)
    info = MethodInfo("/pkg.Svc/M", RpcKind.UNARY, Side.SERVER)
    plan = gov.server_plan(gov.snapshot(), info)
    assert plan is not None
    assert [gate.name for gate in plan.gates] == ["brownout", "rate_limit"]
    brownout = plan.instance("brownout")
    gov.apply({**rules, "adaptive": {"enabled": True}})  # its own rule unchanged: the same one
    again = gov.server_plan(gov.snapshot(), info)
    assert again is not None and again.instance("brownout") is brownout
    # the queue-delay gate and the adaptive limiter come with adaptive rules, around the method's
    assert [gate.name for gate in again.gates] == ["adaptive", "brownout", "rate_limit", "adaptive"]
    completions, refused = admit(again.gates, None, NoEnv())
    assert refused is None and len(completions) == 4
    gov.apply({"server": {"methods": {"*": {"brownout": {"share": 0.3}}}}})
    changed = gov.server_plan(gov.snapshot(), info)
    assert changed is not None and changed.instance("brownout") is not brownout
