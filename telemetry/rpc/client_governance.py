"""Client-side governance as a concern of the chain: the plan's gates per target and method, fail
fast before any network I/O, and outcomes that judge the target by its own answers.

A call passes the plan's gates in order (``telemetry.governance.registry``: the breaker per target
and method, adaptive throttling per target, the bulkhead per downstream). An open breaker or a
throttled call fails fast with UNAVAILABLE, a full bulkhead with RESOURCE_EXHAUSTED; each may
answer with the method's fallback instead, or queue the call to send later (``defer``). A failed
call may get a fallback answer, a deferral, or a retry (one engine,
:class:`~telemetry.governance.retry.RetryCall`, driven by the channel; see
:meth:`ClientGovernance.retry_plan`).

Breakers judge their own target only (``telemetry.rpc.relay``): a failure that relays a refusal
from further down the chain, or the target's rate limit answering, is neither a failure nor a
success (Verdict.IGNORED), and a half-open probe that gets one hands its permit back instead of
reopening. A refusal -- local, or the target's -- is noted on the call being served, so that
call's failure tells its own callers the same.

Which codes count as failures is the breaker rule's ``failure_codes`` (default UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN). Codes that say the request was wrong,
not the server -- INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
FAILED_PRECONDITION, OUT_OF_RANGE -- are not among them (a rule may still name them), and
CANCELLED never counts (the caller gave up).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from telemetry.governance.breaker import CircuitBreaker
from telemetry.governance.engine import ClientPlan, Deferral, Governance
from telemetry.governance.gate import Admission, Gate, Outcome, Verdict, admit, finish, outcome
from telemetry.governance.observe import DEFERRED, FALLBACK, REJECTED
from telemetry.governance.retry import RetryPlan
from telemetry.rpc.call import AnswerCall, CallState, RejectCall, RpcKind, has_answer, retry_attempt
from telemetry.rpc.deferral import ChannelFactory, DeferredCalls
from telemetry.rpc.relay import DECISION_KEY, note_refusal, refusal, relayed
from telemetry.rpc.server_governance import OVERLOAD_CODES, STATUS, SUCCESS, answer_with_fallback

__all__ = ["ClientGovernance", "ChannelFactory"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


class ClientGovernance:
    """Client-side protection of one target: breaker, throttle, bulkhead, fallback, retry."""

    __slots__ = ("_defer", "_gov", "_recorder", "_retries", "target")

    # Client gates never wait and never read keys or queue delays (telemetry.governance.gate.CallEnv).
    sleep = None
    defer = None

    def __init__(
        self,
        governance: Governance,
        target: str,
        channel: ChannelFactory | None = None,
        *,
        retries: bool = True,
    ) -> None:
        """``channel`` makes a plain channel to ``target``, for sending deferred calls later.
        ``retries`` False: the channel above this one retries (a balanced channel's instances)."""
        self._gov = governance
        self._recorder = governance.recorder
        self.target = target
        self._retries = retries
        self._defer = None if channel is None else _deferral_factory(channel)

    def key(self, call: object, source: str) -> str:
        return ""

    def queue_delay(self) -> float | None:
        return None

    def on_start(self, state: CallState) -> None:
        gov = self._gov
        snapshot = gov.snapshot()
        if not snapshot.rules.enabled:
            return
        plan = gov.client_plan(snapshot, state.info, self.target, self._defer)
        if plan is None:
            return
        completions, refused = admit(plan.gates, state, self)
        if refused is not None:
            self._refuse(state, plan, refused)
        retry = plan.retry_plan
        if retry is not None and retry.budget is not None and self._retries and not retry_attempt.get():
            retry.budget.on_call()  # first attempts earn the budget retries are drawn from
        state.governance = Admission(plan, completions)

    def on_finish(self, state: CallState) -> None:
        held = state.governance
        if not isinstance(held, Admission):
            return
        plan: ClientPlan = held.plan
        code = state.code
        ended = SUCCESS if code is _OK else self._outcome(state, plan)
        finish(held.completions, ended, state.duration)
        fallback = plan.fallback
        if fallback is None:
            return
        if code is _OK:
            fallback.remember(state.request, state.response)
            return
        if code not in plan.failure_codes or state.info.kind is not RpcKind.UNARY:
            return
        if plan.deferral is not None:
            found, value = fallback.answer(state.request)
            if found and plan.deferral.offer(state.request):
                state.answer = AnswerCall(value, "downstream: deferred",
                                          ((DECISION_KEY, f"{DEFERRED}:downstream"),))  # fmt: skip
                self._recorder.decision(state, "deferral", DEFERRED, f"downstream failed: {code.name}")
                return
        if fallback.on_failure:
            found, value = fallback.answer(state.request)
            if found:
                state.answer = AnswerCall(value, "downstream: fallback",
                                          ((DECISION_KEY, f"{FALLBACK}:downstream"),))  # fmt: skip
                self._recorder.decision(state, "fallback", FALLBACK, f"downstream failed: {code.name}")

    @staticmethod
    def _outcome(state: CallState, plan: ClientPlan) -> Outcome:
        """What the call's end says about the target (breakers) and its load (throttles)."""
        code = state.code
        refused_by = refusal(state.trailing)
        relays = None
        if refused_by is not None:
            note_refusal(refused_by)  # the call being served fails for the same reason
            relays = relayed(state.trailing)
        overload = code in OVERLOAD_CODES and relays is None
        if relays is not None or refused_by == "rate_limit" or code is _CANCELLED:
            # Not about the target's health: it relays a refusal from further down, its limit
            # answers, or the caller gave up.
            return outcome(Verdict.IGNORED, overload)
        return outcome(Verdict.FAILURE if code in plan.failure_codes else Verdict.SUCCESS, overload)

    def retry_plan(self, state: CallState) -> RetryPlan | None:
        """How the failed call ``state`` may be retried (its channel drives a
        :class:`~telemetry.governance.retry.RetryCall` with it), or None: not idempotent, no retry
        rule, answered by a fallback, a request stream, or a balanced channel retries instead."""
        held = state.governance
        if not isinstance(held, Admission) or not self._retries or has_answer(state):
            return None
        if state.info.streams_requests:
            return None
        plan: ClientPlan = held.plan
        return plan.retry_plan

    def _refuse(self, state: CallState, plan: ClientPlan, gate: Gate) -> None:
        fallback = plan.fallback
        unary = state.info.kind is RpcKind.UNARY
        if plan.deferral is not None and fallback is not None and unary:
            self._defer_call(state, plan.deferral, fallback, gate.name)
        # grpc.aio lets a client interceptor answer only unary calls; keep sync and aio alike.
        if fallback is not None and unary and fallback.wanted(gate.trigger):
            answer_with_fallback(state, fallback, gate.name, "fail fast", self._recorder)
        self._recorder.decision(state, gate.name, REJECTED, "fail fast")
        note_refusal(gate.name)
        # No retry pushback: that is a server's word (gRFC A6); a balanced channel tries another
        # instance at once when one instance's breaker refuses.
        raise RejectCall(
            STATUS[gate.code],
            f"{gate.name}: call refused locally",
            ((DECISION_KEY, f"{REJECTED}:{gate.name}"),),
        )

    def _defer_call(self, state: CallState, deferral: Deferral, fallback: Any, mechanism: str) -> None:
        """Queue the refused call and answer with the fallback; a full queue is an explicit refusal."""
        found, value = fallback.answer(state.request)
        if not found:
            return  # nothing to tell the caller: refuse as usual rather than queue silently
        if deferral.offer(state.request):
            self._recorder.decision(state, "deferral", DEFERRED, f"{mechanism} refused the call")
            raise AnswerCall(
                value, f"{mechanism}: deferred", ((DECISION_KEY, f"{DEFERRED}:{mechanism}"),)
            )
        self._recorder.decision(state, "deferral", REJECTED, "deferral queue full")
        note_refusal("deferral")
        raise RejectCall(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "deferral queue full",
            ((DECISION_KEY, f"{REJECTED}:deferral"),),
        )


def _deferral_factory(
    channel: ChannelFactory,
) -> Callable[[str, CircuitBreaker | None, frozenset[Any], int], Deferral]:
    def build(method: str, breaker: CircuitBreaker | None, codes: frozenset[Any], size: int) -> Deferral:
        return DeferredCalls(method, channel, breaker, codes, max_items=size)

    return build
