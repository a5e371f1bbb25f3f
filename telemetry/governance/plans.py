"""What a call goes through for one method: its gates in order, and what answers instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.degrade import Priority
from telemetry.governance.fallback import FallbackPlan
from telemetry.governance.gate import Gate
from telemetry.governance.retry import RetryPlan

__all__ = ["ClientPlan", "Deferral", "DeferralFactory", "PlannedMethod", "ServerPlan"]


class PlannedMethod(Protocol):
    """The method a plan is for (the chain's MethodInfo is one)."""

    @property
    def full_method(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def rpc_method(self) -> str: ...
    @property
    def streams_requests(self) -> bool: ...
    @property
    def streams_responses(self) -> bool: ...


class Deferral(Protocol):
    """Queues refused calls of one method and sends them later (``telemetry.rpc.deferral``)."""

    def offer(self, request: Any) -> bool: ...
    @property
    def pending(self) -> int: ...
    def close(self, timeout: float = 5.0) -> object: ...


# (full method, the breaker or None, the failure codes, max queued) -> its deferral
DeferralFactory = Callable[[str, CircuitBreaker | None, frozenset[Any], int], Deferral]


class _Plan:
    __slots__ = ("fallback", "gates")

    def __init__(self, gates: tuple[Gate, ...], fallback: FallbackPlan | None) -> None:
        self.gates = gates  # in the order they admit a call
        self.fallback = fallback

    def instance(self, name: str) -> Any:
        """The mechanism instance behind the gate ``name`` (None: the plan has no such gate)."""
        for gate in self.gates:
            if gate.name == name:
                return gate.instance
        return None


class ServerPlan(_Plan):
    """What the server concern does for one method."""

    __slots__ = ("priority", "write")

    def __init__(
        self, gates: tuple[Gate, ...], fallback: FallbackPlan | None, priority: Priority, write: bool
    ) -> None:
        super().__init__(gates, fallback)
        self.priority = priority
        self.write = write


class ClientPlan(_Plan):
    """What the client concern does for one method on one target."""

    __slots__ = ("deferral", "failure_codes", "retry_plan")

    def __init__(
        self,
        gates: tuple[Gate, ...],
        fallback: FallbackPlan | None,
        failure_codes: frozenset[Any],
        retry_plan: RetryPlan | None,
        deferral: Deferral | None,
    ) -> None:
        super().__init__(gates, fallback)
        self.failure_codes = failure_codes  # the breaker rule's (grpc.StatusCode), or the default
        self.retry_plan = retry_plan
        self.deferral = deferral
