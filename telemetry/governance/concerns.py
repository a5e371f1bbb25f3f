"""Governance as concerns of the interceptor chain: thin, they map decisions to gRPC statuses.

They run last in the chain, so a refused call is still traced, logged and counted like any other.

Server (:class:`ServerGovernance`): priority shedding, the method's rate limit, then the adaptive
limiter. A refusal is RESOURCE_EXHAUSTED with grpc's retry pushback in the trailing metadata
(``grpc-retry-pushback-ms``, gRFC A6), or the method's fallback. Overload refusals push back by a
short delay (another instance, or this one a little later, may take the call); a per-key limit
(per user, per peer) says ``-1``, do not retry: the limit is the caller's, and retrying on another
instance would double it.

Client (:class:`ClientGovernance`): the breaker (per target and method), adaptive throttling (per
target), the bulkhead (per downstream). An open breaker or a throttled call fails fast with
UNAVAILABLE before any network I/O; a full bulkhead with RESOURCE_EXHAUSTED; each may answer with
the method's fallback instead. Outcomes feed the breaker and throttle, and a failed call may get a
fallback answer or a retry (one engine, :class:`~telemetry.governance.retry.RetryCall`, driven by
the channel; see :meth:`ClientGovernance.retry_plan`).

Breakers judge their own target only (``telemetry.rpc.relay``): a failure that relays a refusal
from further down the chain, or the target's rate limit answering, is neither a failure nor a
success, and a half-open probe that gets one hands its permit back instead of reopening. A
refusal -- local, or the target's -- is noted on the call being served, so that call's failure
tells its own callers the same.

Which codes count as failures is the breaker rule's ``failure_codes`` (default UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN). Codes that say the request was wrong,
not the server -- INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
FAILED_PRECONDITION, OUT_OF_RANGE -- are not among them (a rule may still name them), and
CANCELLED never counts (the caller gave up).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import grpc
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from telemetry.governance.deferral import ChannelFactory, DeferredCalls
from telemetry.governance.degrade import Priority
from telemetry.governance.engine import ClientPlan, FallbackPlan, Governance, ServerPlan
from telemetry.governance.keyed import KeyedLimiter
from telemetry.governance.observe import DEFERRED, FALLBACK, REJECTED
from telemetry.governance.retry import RetryPlan
from telemetry.rpc.call import AnswerCall, CallState, RejectCall, RpcKind, has_answer, retry_attempt
from telemetry.rpc.executor import queue_delay
from telemetry.rpc.relay import DECISION_KEY, RETRY_PUSHBACK_KEY, note_refusal, refusal, relayed
from telemetry.tracing.concern import PEER_HOST_PORT

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
# Codes that mean "the backend refused for load", not a broken request (SRE throttling counts them).
_OVERLOAD_CODES = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})


class ServerGovernance:
    """Server-side admission: shedding, rate limits, adaptive limit."""

    __slots__ = ("_aio", "_gov", "_recorder", "_sleep")

    def __init__(self, governance: Governance, *, blocking_waits: bool = True) -> None:
        self._gov = governance
        self._recorder = governance.recorder
        # A leaky bucket with max_wait makes a sync handler thread wait its turn; an aio server
        # must never block its loop, so there such calls are refused instead.
        self._sleep = time.sleep if blocking_waits else None
        self._aio = not blocking_waits

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
        plan = gov.server_plan(snapshot, state.info)
        shedder = snapshot.shedder
        if shedder is not None:
            priority, write = (
                (plan.priority, plan.write) if plan is not None else (Priority.NORMAL, False)
            )
            if shedder.should_shed(priority, write, gov.cpu()):
                self._refuse(
                    state, plan, "shedding", f"cpu pressure, {priority.name.lower()} priority", 1.0
                )
        gate = snapshot.queue_gate
        if gate is not None:
            # A standing queue (sync servers): refuse calls that waited long, cheaply, so the
            # queue drains and the calls that run are fresh enough to meet their deadlines.
            waited = queue_delay()
            if waited is not None and not gate.admit(waited):
                self._refuse(state, plan, "adaptive", "queue", 0.1)
        key = ""
        limiter = plan.limiter if plan is not None else None
        if limiter is not None:
            assert plan is not None
            if isinstance(limiter, KeyedLimiter):
                key = call_key(state, plan.limit_key)
                if not limiter.try_acquire(key):
                    # The caller's own limit: another instance must not take the call instead.
                    self._refuse(state, plan, "rate_limit", f"limit for {plan.limit_key}", None)
            elif not self._admit(limiter, plan.reserve):
                self._refuse(state, plan, "rate_limit", "limit", limiter.retry_after())
        adaptive = snapshot.adaptive
        if adaptive is not None and self._aio and gov.loop_lag is None:
            gov.watch_event_loop()
        if adaptive is not None and not adaptive.try_acquire():
            if limiter is not None:
                _release(limiter, key)
            self._refuse(state, plan, "adaptive", adaptive.reason or "overload", 0.1)
        if (
            limiter is not None
            or adaptive is not None
            or (plan is not None and plan.fallback is not None)
        ):
            state.governance = (plan, limiter, key, adaptive)

    def on_finish(self, state: CallState) -> None:
        held = state.governance
        if held is None:
            return
        plan, limiter, key, adaptive = held
        if limiter is not None:
            _release(limiter, key)
        if adaptive is not None:
            adaptive.on_done(state.duration, state.code not in _OVERLOAD_CODES)
        if plan is not None and plan.fallback is not None and state.code == grpc.StatusCode.OK:
            plan.fallback.remember(state.request, state.response)

    def _admit(self, limiter: Any, reserve: Any) -> bool:
        if reserve is None or self._sleep is None:
            return bool(limiter.try_acquire())
        wait = reserve()
        if wait is None:
            return False
        if wait > 0:
            self._sleep(wait)
        return True

    def _refuse(
        self,
        state: CallState,
        plan: ServerPlan | None,
        mechanism: str,
        reason: str,
        retry_after: float | None,
    ) -> None:
        """Refuse with RESOURCE_EXHAUSTED; ``retry_after`` None: pushback -1, do not retry."""
        fallback = plan.fallback if plan is not None else None
        if fallback is not None and fallback.on_limit:
            _answer_with_fallback(state, fallback, mechanism, reason, self._recorder)
        self._recorder.decision(state, mechanism, REJECTED, reason)
        pushback = "-1" if retry_after is None else str(max(1, round(retry_after * 1000)))
        raise RejectCall(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{mechanism}: {reason}",
            ((RETRY_PUSHBACK_KEY, pushback), (DECISION_KEY, f"{REJECTED}:{mechanism}")),
        )


class ClientGovernance:
    """Client-side protection of one target: breaker, throttle, bulkhead, fallback, retry."""

    __slots__ = ("_channel", "_gov", "_recorder", "_retries", "target")

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
        self._channel = channel
        self._retries = retries

    def on_start(self, state: CallState) -> None:
        gov = self._gov
        snapshot = gov.snapshot()
        if not snapshot.rules.enabled:
            return
        plan = gov.client_plan(snapshot, state.info, self.target, self._channel)
        if plan is None:
            return
        breaker = plan.breaker
        if breaker is not None and not breaker.try_acquire():
            self._refuse(state, plan, "breaker", grpc.StatusCode.UNAVAILABLE, "breaker")
        throttle = plan.throttle
        if throttle is not None and not throttle.try_acquire():
            if breaker is not None:
                breaker.on_ignored()
            self._refuse(state, plan, "throttle", grpc.StatusCode.UNAVAILABLE, "limit")
        bulkhead = plan.bulkhead
        if bulkhead is not None and not bulkhead.try_acquire():
            if breaker is not None:
                breaker.on_ignored()
            self._refuse(state, plan, "bulkhead", grpc.StatusCode.RESOURCE_EXHAUSTED, "limit")
        retry = plan.retry_plan
        if retry is not None and retry.budget is not None and self._retries and not retry_attempt.get():
            retry.budget.on_call()  # first attempts earn the budget retries are drawn from
        state.governance = plan

    def on_finish(self, state: CallState) -> None:
        plan: ClientPlan | None = state.governance
        if plan is None:
            return
        code = state.code
        if plan.bulkhead is not None:
            plan.bulkhead.release()
        refused_by = relays = None
        if code is not _OK:
            refused_by = refusal(state.trailing)
            if refused_by is not None:
                note_refusal(refused_by)  # the call being served fails for the same reason
                relays = relayed(state.trailing)
        breaker = plan.breaker
        if breaker is not None:
            if code is _OK:
                breaker.on_success(state.duration)
            elif relays is not None or refused_by == "rate_limit" or code is _CANCELLED:
                # Not about the target's health: it relays a refusal from further down, its
                # limit answers, or the caller gave up. A probe hands its permit back.
                breaker.on_ignored()
            elif code in plan.failure_codes:
                breaker.on_failure(state.duration)
            else:
                breaker.on_success(state.duration)
        throttle = plan.throttle
        if throttle is not None:
            if code in _OVERLOAD_CODES and relays is None:
                throttle.on_rejected()
            else:
                throttle.on_accepted()
        fallback = plan.fallback
        if fallback is None:
            return
        if code == grpc.StatusCode.OK:
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

    def retry_plan(self, state: CallState) -> RetryPlan | None:
        """How the failed call ``state`` may be retried (its channel drives a
        :class:`~telemetry.governance.retry.RetryCall` with it), or None: not idempotent, no retry
        rule, answered by a fallback, a request stream, or a balanced channel retries instead."""
        plan: ClientPlan | None = state.governance
        if plan is None or not self._retries or has_answer(state) or state.info.streams_requests:
            return None
        return plan.retry_plan

    def _refuse(
        self,
        state: CallState,
        plan: ClientPlan,
        mechanism: str,
        code: grpc.StatusCode,
        trigger: str,
    ) -> None:
        fallback = plan.fallback
        if plan.deferral is not None and fallback is not None and state.info.kind is RpcKind.UNARY:
            self._defer(state, plan.deferral, fallback, mechanism)
        wanted = fallback is not None and (
            fallback.on_breaker if trigger == "breaker" else fallback.on_limit
        )
        # grpc.aio lets a client interceptor answer only unary calls; keep sync and aio alike.
        if fallback is not None and wanted and state.info.kind is RpcKind.UNARY:
            _answer_with_fallback(state, fallback, mechanism, "fail fast", self._recorder)
        self._recorder.decision(state, mechanism, REJECTED, "fail fast")
        note_refusal(mechanism)
        # No retry pushback: that is a server's word (gRFC A6); a balanced channel tries another
        # instance at once when one instance's breaker refuses.
        raise RejectCall(
            code, f"{mechanism}: call refused locally", ((DECISION_KEY, f"{REJECTED}:{mechanism}"),)
        )

    def _defer(
        self, state: CallState, deferral: DeferredCalls, fallback: FallbackPlan, mechanism: str
    ) -> None:
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


def _answer_with_fallback(
    state: CallState, fallback: FallbackPlan, mechanism: str, reason: str, recorder: Any
) -> None:
    """Raise AnswerCall with the fallback response, if there is one (else return)."""
    if state.info.streams_responses:
        return
    found, value = fallback.answer(state.request)
    if found:
        recorder.decision(state, mechanism, FALLBACK, reason)
        raise AnswerCall(value, f"{mechanism}: fallback", ((DECISION_KEY, f"{FALLBACK}:{mechanism}"),))


def _release(limiter: Any, key: str) -> None:
    if isinstance(limiter, KeyedLimiter):
        limiter.release(key)
    else:
        limiter.release()


def call_key(state: CallState, source: str) -> str:
    """The value a keyed limit is keyed by: ``peer`` (client host), ``metadata:<name>`` or
    ``baggage:<name>``; "" when the call does not carry it. A caller controls it, so a long one
    is replaced by its digest: the key table is bounded in bytes as well as in entries."""
    key = _call_key(state, source)
    if len(key) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    return key


MAX_KEY_CHARS = 128


def _call_key(state: CallState, source: str) -> str:
    if source == "peer":
        return PEER_HOST_PORT[state.peer][0]
    kind, _, name = source.partition(":")
    if kind == "metadata":
        for key, value in state.metadata:
            if key == name:
                return value if isinstance(value, str) else value.decode("utf-8", "replace")
        return ""
    value = baggage.get_baggage(name)
    if value is None:
        value = _baggage_from_metadata(state, name)
    return str(value) if value is not None else ""


_BAGGAGE = W3CBaggagePropagator()


def _baggage_from_metadata(state: CallState, name: str) -> object | None:
    """Baggage straight from the header, for chains without tracing (which would extract it)."""
    for key, header in state.metadata:
        if key == "baggage":
            return baggage.get_baggage(name, _BAGGAGE.extract({"baggage": str(header)}))
    return None
