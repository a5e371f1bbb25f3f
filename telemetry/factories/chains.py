"""The concern chains every interceptor, server and channel runs: tracing, access log, metrics,
deadline, then governance (and the fault knobs, last on the server side) when the handle has them."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from telemetry.config import TelemetryConfig
from telemetry.control.faults import FaultInjector
from telemetry.governance.engine import Governance
from telemetry.logging.access import AccessLog
from telemetry.metrics.rpc import RpcMetricsConcern, SideMetrics
from telemetry.rpc import deadline
from telemetry.rpc.call import Side
from telemetry.rpc.client_governance import ClientGovernance
from telemetry.rpc.concern import Concern
from telemetry.rpc.server_governance import ServerGovernance
from telemetry.tracing.concern import ClientTracing, ServerTracing
from telemetry.tracing.setup import Tracing

__all__ = ["ConcernChains"]


class ConcernChains:
    """Builds chains from a started handle's parts; ``faults`` (sync, aio) only with live rules."""

    def __init__(
        self,
        config: TelemetryConfig,
        tracing: Tracing | None,
        metrics: tuple[SideMetrics, SideMetrics] | None,
        governance: Governance | None,
        faults: tuple[FaultInjector, FaultInjector] | None,
    ) -> None:
        self.config = config
        self.tracing = tracing
        self.server_metrics: SideMetrics | None = metrics[0] if metrics is not None else None
        self.client_metrics: SideMetrics | None = metrics[1] if metrics is not None else None
        self.governance = governance
        self.faults = faults

    def server(
        self,
        *,
        tracing: bool = True,
        metrics: bool = True,
        logging: bool = True,
        deadlines: bool = True,
        governance: bool = True,
        aio: bool = False,
    ) -> list[Concern]:
        cfg = self.config
        concerns = self._common(
            self._server_tracing() if tracing else None,
            self._access_log(Side.SERVER, "all" if cfg.access_log else "off") if logging else None,
            self.server_metrics if metrics else None,
            deadline.ServerDeadline() if deadlines and cfg.deadline_propagation else None,
        )
        if governance and self.governance is not None:
            # grpc.aio runs handlers on its loop: governance must never block it there.
            concerns.append(ServerGovernance(self.governance, blocking_waits=not aio))
        if self.faults is not None:  # last, so refused calls burn nothing
            concerns.append(self.faults[1] if aio else self.faults[0])
        return concerns

    def client(
        self,
        target: str = "",
        *,
        tracing: bool = True,
        metrics: bool = True,
        logging: bool = True,
        deadlines: bool = True,
        governance: bool = True,
        channel: Callable[[], grpc.Channel] | None = None,
        retries: bool = True,
    ) -> list[Concern]:
        cfg = self.config
        concerns = self._common(
            self._client_tracing(target) if tracing else None,
            self._access_log(Side.CLIENT, cfg.client_access_log) if logging else None,
            self.client_metrics if metrics else None,
            deadline.ClientDeadline() if deadlines and cfg.deadline_propagation else None,
        )
        if governance and self.governance is not None:
            concerns.append(ClientGovernance(self.governance, target, channel, retries=retries))
        return concerns

    @staticmethod
    def _common(
        tracing: Concern | None,
        access_log: AccessLog | None,
        metrics: SideMetrics | None,
        deadlines: Concern | None,
    ) -> list[Concern]:
        concerns: list[Concern] = []
        if tracing is not None:
            concerns.append(tracing)
        if access_log is not None:
            concerns.append(access_log)
        if metrics is not None:
            concerns.append(RpcMetricsConcern(metrics))
        if deadlines is not None:
            concerns.append(deadlines)
        return concerns

    def _server_tracing(self) -> ServerTracing | None:
        traced = self.tracing
        if traced is None:
            return None
        return ServerTracing(traced.rpc_tracer, traced.propagation, self.config.untraced_services)

    def _client_tracing(self, target: str) -> ClientTracing | None:
        traced = self.tracing
        if traced is None:
            return None
        untraced = self.config.untraced_services
        return ClientTracing(traced.rpc_tracer, traced.propagation, untraced, target)

    def _access_log(self, side: Side, lines: str) -> AccessLog:
        cfg = self.config
        return AccessLog(
            cfg.service_name,
            side,
            lines=lines,
            excluded_services=cfg.untraced_services,
            log_metadata=cfg.log_metadata,
            log_payloads=cfg.log_payloads,
            payload_max_chars=cfg.payload_max_chars,
            sensitive_keys=cfg.sensitive_keys,
        )
