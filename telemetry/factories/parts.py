"""A started handle's parts: what :mod:`.running` started, and the chains and channels built on it."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from telemetry.config import TelemetryConfig
from telemetry.control.faults import FaultInjector
from telemetry.factories.chains import ConcernChains
from telemetry.factories.channels import Channels
from telemetry.factories.running import Running, StartPlan, start
from telemetry.governance.engine import Governance
from telemetry.metrics.rpc import SideMetrics

__all__ = ["Parts", "start_parts"]


@dataclass(frozen=True)
class Parts:
    running: Running
    chains: ConcernChains
    channels: Channels


def start_parts(
    config: TelemetryConfig,
    plan: StartPlan,
    *,
    registry: CollectorRegistry,
    governance: Governance | None,
    metrics: tuple[SideMetrics, SideMetrics] | None,
    faults: FaultInjector,
) -> Parts:
    running = start(
        config, plan, registry=registry, governance=governance, metrics=metrics, faults=faults
    )
    # The fault knobs arrive with the live rules, so they join the server chain only then.
    linked = (faults, faults.linked(aio=True)) if running.live_rules is not None else None
    chains = ConcernChains(config, running.tracing, metrics, governance, linked)
    return Parts(running, chains, Channels(chains, running.discovery, governance))
