"""Server-side governance as a concern of the chain: admission by the method's plan, refusals as
gRPC statuses.

It runs last in the chain, so a refused call is still traced, logged and counted like any other.
A call passes the plan's gates in order (``telemetry.governance.engine``: priority shedding, the
queue-delay gate, the method's rate limit, the adaptive limiter) and each admitting gate hears how
the call ended. A refusal is RESOURCE_EXHAUSTED with grpc's retry pushback in the trailing
metadata (``grpc-retry-pushback-ms``, gRFC A6), or the method's fallback. Overload refusals push
back by a short delay (another instance, or this one a little later, may take the call); a per-key
limit (per user, per peer) says ``-1``, do not retry: the limit is the caller's, and retrying on
another instance would double it. gRPC's health service is never governed (:data:`UNGOVERNED`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from telemetry.governance.engine import Governance, ServerPlan
from telemetry.governance.fallback import FallbackPlan
from telemetry.governance.gate import Admission, Gate, Verdict, admit, finish, outcome
from telemetry.governance.observe import FALLBACK, REJECTED, DecisionRecorder
from telemetry.rpc.call import AnswerCall, CallState, MethodInfo, RejectCall
from telemetry.rpc.call_keys import call_key
from telemetry.rpc.executor import queue_delay
from telemetry.rpc.relay import DECISION_KEY, RETRY_PUSHBACK_KEY

__all__ = [
    "OVERLOAD_CODES", "STATUS", "SUCCESS", "UNGOVERNED", "ServerGovernance", "answer_with_fallback",
]  # fmt: skip

_OK = grpc.StatusCode.OK
SUCCESS = outcome(Verdict.SUCCESS, False)
STATUS = {code.name: code for code in grpc.StatusCode}
"""A gate's refusal code (a name, since governance knows no grpc) as grpc's status code."""
# Codes that mean "refused for load", not a broken request (the adaptive limiter leaves them out).
OVERLOAD_CODES = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})
# What a platform asks a process, never refused for load: an overloaded server that shed its health
# checks would be restarted by its orchestrator (a Kubernetes liveness probe, a load balancer's
# check), moving its load onto the others and deepening the overload; a check answers from memory.
# No rule, shedding or adaptive limit applies to it, and it counts in no limiter. (Reflection stays
# governed: its bidi stream holds a worker for as long as a client keeps it open.)
UNGOVERNED = frozenset(
    {"grpc.health.v1.Health"}  # https://github.com/grpc/grpc/blob/master/doc/health-checking.md
)


def _defer(call: object, seconds: float) -> None:
    assert isinstance(call, CallState)
    call.deferred = seconds


class ServerGovernance:
    """Server-side admission: shedding, rate limits, adaptive limit."""

    __slots__ = ("_aio", "_gov", "_recorder", "defer", "sleep")

    def __init__(self, governance: Governance, *, blocking_waits: bool = True) -> None:
        self._gov = governance
        self._recorder = governance.recorder
        # A leaky bucket with max_wait makes a sync handler thread wait its turn; an aio server
        # must never block its loop, so there the call is held by its own coroutine instead.
        self.sleep: Callable[[float], None] | None = time.sleep if blocking_waits else None
        self.defer: Callable[[object, float], None] | None = None if blocking_waits else _defer
        self._aio = not blocking_waits

    # -- what gates may ask about a call (telemetry.governance.gate.CallEnv) ----------------

    def key(self, call: object, source: str) -> str:
        assert isinstance(call, CallState)
        return call_key(call, source)

    def queue_delay(self) -> float | None:
        return queue_delay()

    # -- hooks ------------------------------------------------------------------------------

    def for_method(self, info: MethodInfo) -> ServerGovernance | None:
        return None if info.service in UNGOVERNED else self

    def on_start(self, state: CallState) -> None:
        gov = self._gov
        snapshot = gov.snapshot()
        if not snapshot.rules.enabled:
            return
        left = state.context.time_remaining() if state.context is not None else None
        if left is not None and left <= 0:
            # Queued past its deadline: the caller has given up, so doing the work only adds load.
            self._recorder.decision(state, "deadline", REJECTED, "expired before it started")
            raise RejectCall(
                grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before the call started"
            )
        plan = gov.server_plan(snapshot, state.info) or snapshot.service_plan
        if self._aio and snapshot.adaptive is not None and gov.loop_lag is None:
            gov.watch_event_loop()
        completions, refused = admit(plan.gates, state, self)
        if refused is not None:
            self._refuse(state, plan.fallback, refused)
        if completions or plan.fallback is not None:
            state.governance = Admission(plan, completions)

    def on_finish(self, state: CallState) -> None:
        held = state.governance
        if not isinstance(held, Admission):
            return
        code = state.code
        ok = code is _OK
        ended = SUCCESS if ok else outcome(Verdict.FAILURE, code in OVERLOAD_CODES)
        finish(held.completions, ended, state.duration)
        plan: ServerPlan = held.plan
        fallback = plan.fallback
        if fallback is not None and ok:
            fallback.remember(state.request, state.response)

    def _refuse(self, state: CallState, fallback: FallbackPlan | None, gate: Gate) -> None:
        """Refuse with the gate's code (RESOURCE_EXHAUSTED for the built-in server mechanisms); a
        retry-after of None: pushback -1, do not retry."""
        reason, retry_after = gate.mechanism.refusal()
        if fallback is not None and fallback.wanted(gate.trigger):
            answer_with_fallback(state, fallback, gate.name, reason, self._recorder)
        self._recorder.decision(state, gate.name, REJECTED, reason)
        pushback = "-1" if retry_after is None else str(max(1, round(retry_after * 1000)))
        raise RejectCall(
            STATUS[gate.code],
            f"{gate.name}: {reason}",
            ((RETRY_PUSHBACK_KEY, pushback), (DECISION_KEY, f"{REJECTED}:{gate.name}")),
        )


def answer_with_fallback(
    state: CallState, fallback: FallbackPlan, mechanism: str, reason: str, recorder: DecisionRecorder
) -> None:
    """Raise AnswerCall with the fallback response, if there is one (else return)."""
    if state.info.streams_responses:
        return
    found, value = fallback.answer(state.request)
    if found:
        recorder.decision(state, mechanism, FALLBACK, reason)
        raise AnswerCall(value, f"{mechanism}: fallback", ((DECISION_KEY, f"{FALLBACK}:{mechanism}"),))
