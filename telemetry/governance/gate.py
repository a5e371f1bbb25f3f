"""The one shape every governance mechanism has: admit a call, then hear how it ended.

This is go-kratos/aegis's shape (``Allow() (DoneFunc, error)``) in Python: a :class:`Mechanism`
``allow``\\ s a call and hands back an :class:`Admitted` completion (often itself), or None to
refuse; the completion's ``done(outcome, duration)`` is called once when the call ends. A plan is
an ordered tuple of :class:`Gate`\\ s, each a mechanism with how its refusals read, and the
concerns in ``telemetry.rpc`` loop over it with :func:`admit` and :func:`finish` without knowing
which mechanisms are there. Adding a mechanism is its module (the algorithm and its gate), its
rule in ``rules.py`` and one line in ``registry.py``; see docs/governance.md.

Nothing here knows grpc: a call is an opaque object the gates hand to :class:`CallEnv` when they
need something from it (a keyed limit's key), and outcomes are classified by the concerns.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from telemetry.governance._types import Clock, RandomSource
from telemetry.governance.cluster_limit import ClusterStore
from telemetry.governance.observe import DecisionRecorder

__all__ = [
    "NOT_SENT",
    "BuildContext",
    "PASS",
    "Admission",
    "Admitted",
    "CallEnv",
    "Gate",
    "Mechanism",
    "Outcome",
    "Verdict",
    "admit",
    "finish",
    "outcome",
]


class Verdict(enum.Enum):
    """What a call's end says about the health of the target that served it (breakers read it)."""

    SUCCESS = "success"
    FAILURE = "failure"  # one of the rule's failure codes
    IGNORED = "ignored"  # not about the target: it relayed a refusal, its limit answered, cancelled


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an admitted call ended, as the mechanisms need it."""

    verdict: Verdict
    overload: bool  # refused for load (RESOURCE_EXHAUSTED, UNAVAILABLE): throttles and limiters count it
    sent: bool = True  # False: a later gate refused it, so it never reached the target


NOT_SENT = Outcome(Verdict.IGNORED, overload=False, sent=False)
"""Handed back to the gates that admitted a call when a later gate refused it."""

_OUTCOMES = {(v, o): Outcome(v, o) for v in Verdict for o in (False, True)}


def outcome(verdict: Verdict, overload: bool) -> Outcome:
    """The shared :class:`Outcome` for ``verdict`` and ``overload`` (no allocation per call)."""
    return _OUTCOMES[verdict, overload]


class Admitted(Protocol):
    """The completion of one admitted call."""

    def done(self, outcome: Outcome, duration: float) -> None:
        """The call ended after ``duration`` seconds; called exactly once."""


class CallEnv(Protocol):
    """What a gate may ask the concern about the call being admitted."""

    @property
    def sleep(self) -> Callable[[float], None] | None:
        """Waits a handler thread may make (a leaky bucket's turn); None: never block (aio)."""

    @property
    def defer(self) -> Callable[[object, float], None] | None:
        """Hold ``call`` that many seconds before its handler runs, without blocking (a grpc.aio
        server awaits it); None where calls cannot be held so (sync servers sleep instead)."""

    def key(self, call: object, source: str) -> str:
        """The value of ``source`` (``peer``, ``metadata:<name>``, ``baggage:<name>``) in ``call``."""

    def queue_delay(self) -> float | None:
        """Seconds the call waited for a worker (None: not known)."""


class Mechanism(Protocol):
    """A governance mechanism seen by the chain."""

    def allow(self, call: object, env: CallEnv) -> Admitted | None:
        """Admit ``call`` (the completion to call when it ends) or refuse it (None)."""

    def refusal(self) -> tuple[str, float | None]:
        """Why the last refusal happened, and in how many seconds a retry may pass (None: do
        not retry: the limit is the caller's own). Called only right after ``allow`` refused."""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What building an instance may use: the engine's clock and randomness, where decisions
    and transitions are recorded, whom the instance serves, and the shared store of cluster
    limits."""

    clock: Clock
    random: RandomSource
    recorder: DecisionRecorder
    target: str
    full_method: str
    pattern: str = ""  # the rule pattern the instance serves (a shared one's, when shared)
    cluster_store: ClusterStore | None = None  # where exact cluster limits count (None: split)


@dataclass(frozen=True, slots=True)
class Gate:
    """One mechanism in a plan, with how its refusals read to callers."""

    name: str  # the decision's mechanism label: rate_limit, breaker, ...
    mechanism: Mechanism
    code: str = "RESOURCE_EXHAUSTED"  # the refusal's status code (a grpc.StatusCode name)
    trigger: str = "limit"  # the fallback condition a refusal meets: "limit" or "breaker"
    instance: object = None  # the algorithm behind it (its state for metrics, the panel, tests)


class _Pass:
    """The completion of a gate that holds nothing for the call (a shedder, a queue gate)."""

    __slots__ = ()

    def done(self, outcome: Outcome, duration: float) -> None:
        return None


PASS: Admitted = _Pass()


P = TypeVar("P")


class Admission(Generic[P]):
    """What a call passed: the plan it was admitted under and the gates' completions (kept on
    the call until it ends)."""

    __slots__ = ("completions", "plan")

    def __init__(self, plan: P, completions: list[Admitted]) -> None:
        self.plan = plan
        self.completions = completions


def admit(gates: tuple[Gate, ...], call: object, env: CallEnv) -> tuple[list[Admitted], Gate | None]:
    """Run ``call`` through ``gates`` in order: (the completions, None) when all admit it, else
    ([], the gate that refused), the earlier gates' completions already told :data:`NOT_SENT`."""
    admitted: list[Admitted] = []
    for gate in gates:
        completion = gate.mechanism.allow(call, env)
        if completion is None:
            for earlier in admitted:
                earlier.done(NOT_SENT, 0.0)
            return [], gate
        admitted.append(completion)
    return admitted, None


def finish(admitted: list[Admitted], ended: Outcome, duration: float) -> None:
    for completion in admitted:
        completion.done(ended, duration)
