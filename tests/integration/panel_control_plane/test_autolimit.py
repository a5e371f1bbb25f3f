"""The automatic limit: the threshold follower writes the cluster limit recommended from a load
curve (an M/M/1 service standing in for Prometheus), within its bounds, not rewritten for noise,
and the instances apply their share of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

from panel_control_plane.support import APPLY_WITHIN, StartInstance, stored
from telemetry.discovery.etcd import EtcdClient
from telemetry.panel.control_plane import AUTOLIMIT, ControlPlane
from telemetry.panel.follower import FOLLOWER_ACTOR, ThresholdFollower
from telemetry.panel.live import LiveQueries
from telemetry.panel.thresholds import LoadPoint, recommend_limit
from telemetry.testing._poll import poll

# -- the automatic limit ----------------------------------------------------------------------------


@dataclass
class MM1Curve:
    """Stands in for :class:`LiveQueries` (Prometheus) with the load curve of an M/M/1 service of
    capacity ``mu`` calls/s: p99 = ln(100) / (mu - throughput)."""

    mu: float
    asked: list[str] = field(default_factory=list)

    def load_curve(self, service: str, minutes: int) -> list[LoadPoint]:
        self.asked.append(service)
        loads = [self.mu * f / 100 for f in range(5, 96, 5)]
        return [LoadPoint(load, math.log(100) / (self.mu - load)) for load in loads]


def test_the_follower_writes_the_recommended_cluster_limit_within_bounds(
    client: EtcdClient, plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    tel = instance(service, "a", {})
    curve = MM1Curve(mu=100)
    follower = ThresholdFollower(plane, cast(LiveQueries, curve))
    recommended = recommend_limit(curve.load_curve(service, 15)).limit
    assert recommended == 33.0
    curve.asked.clear()

    def mine() -> list[Any]:
        return [r for r in follower.step() if r.service == service]

    assert mine() == []  # autolimit unset: off
    plane.set(service, AUTOLIMIT, {"enabled": False, "minimum": 1, "maximum": 1000}, actor="ada")
    assert mine() == []
    assert stored(client, service, "cluster") is None and service not in curve.asked

    plane.set(service, AUTOLIMIT, {"enabled": True, "minimum": 1, "maximum": 1000}, actor="ada")
    [result] = mine()
    assert result.change is not None and result.change.actor == FOLLOWER_ACTOR
    assert result.change.reason == result.recommendation.reason
    assert stored(client, service, "cluster") == {"*": 33.0}
    assert plane.audit(service)[0] == result.change

    curve.mu = 105  # recommends 35: within 10% of 33, not rewritten for noise
    [result] = mine()
    assert result.recommendation.limit == 35.0 and result.change is None
    assert stored(client, service, "cluster") == {"*": 33.0}
    assert len(plane.audit(service)) == 3  # two autolimit settings and one follow

    plane.set(service, AUTOLIMIT, {"enabled": True, "minimum": 1, "maximum": 20}, actor="ada")
    [result] = mine()
    assert result.change is not None and result.change.written
    assert stored(client, service, "cluster") == {"*": 20.0}  # clamped to the maximum
    assert mine()[0].change is None  # the same again: nothing written

    gov = tel.governance
    assert gov is not None
    poll(
        lambda: gov.rules.server.methods.get("*"),
        lambda rule: rule is not None and rule.rate_limit is not None and rule.rate_limit.limit == 20,
        APPLY_WITHIN,
        "the instance's share of the cluster limit",
    )


def test_the_follower_keeps_the_burst_set_with_the_limit(
    client: EtcdClient, plane: ControlPlane, service: str, instance: StartInstance
) -> None:
    """A capacity test's Apply writes a limit with its burst; following moves the limit only."""
    tel = instance(service, "a", {})
    plane.set(service, "cluster", {"*": {"limit": 60, "burst": 3}}, actor="ada")
    plane.set(service, AUTOLIMIT, {"enabled": True, "minimum": 1, "maximum": 1000}, actor="ada")
    follower = ThresholdFollower(plane, cast(LiveQueries, MM1Curve(mu=100)))
    [result] = [r for r in follower.step() if r.service == service]
    assert result.change is not None and result.change.written
    assert stored(client, service, "cluster") == {"*": {"limit": 33.0, "burst": 3}}
    gov = tel.governance
    assert gov is not None
    poll(
        lambda: gov.rules.server.methods.get("*"),
        lambda rule: (
            rule is not None
            and rule.rate_limit is not None
            and (rule.rate_limit.limit, rule.rate_limit.burst) == (33, 3)
        ),
        APPLY_WITHIN,
        "the limit with its burst",
    )
