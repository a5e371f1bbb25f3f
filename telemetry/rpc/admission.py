"""Adaptive admission in grpc's poller thread, for sync servers under CPU overload.

A sync grpc server takes every new call off its completion queue in one poller thread, which
checks ``maximum_concurrent_rpcs`` there: over the limit, it answers RESOURCE_EXHAUSTED at once,
and the call never takes a worker thread. Refusing anywhere later costs far more on an overloaded
CPU-bound service: the call waits for a worker, the worker waits for the GIL (held by handlers
burning CPU), and each such refusal takes the GIL from the calls actually being served, which is
what stretches their latency (benchmarks/overload.py).

:class:`PollerAdmission` turns that static limit into the adaptive limiter's: it is a server
interceptor, and grpc runs interceptors in the poller thread under the server's lock, just after
it has compared the calls in flight with the limit for the call at hand. So, per call, it

* sees whether grpc refuses this call (the same comparison, same values: the lock is held) and
  records the refusal (``governance_decisions_total{mechanism="adaptive"}``, a sampled log line)
  and tells the limiter (its cool-off starts as for its own sheds);
* sets the limit for the next call to :meth:`AdaptiveLimiter.admission_cap`: the limiter's bound
  while it is shedding, none otherwise (or the server's own ``maximum_concurrent_rpcs``).

Calls refused here get grpc's own answer (RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!"),
without the retry hint in trailing metadata that refusals in the chain carry, and never reach the
concern chain: no span, access line or ``grpc_server_*`` count, only the decision counter.

It relies on two attributes of grpc's private server state (``maximum_concurrent_rpcs`` and
``active_rpc_count``, stable since grpc 1.x); without them it stays detached and the limiter
refuses in the chain as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import grpc

from telemetry.governance.engine import Governance
from telemetry.governance.observe import REJECTED
from telemetry.rpc.concern import report_hook_failure

if TYPE_CHECKING:
    from telemetry.rpc._server_common import Handler

__all__ = ["PollerAdmission"]

_log = logging.getLogger("telemetry")


class _ServerState(Protocol):
    """What admission reads and sets of a sync grpc server's private ``_state``."""

    maximum_concurrent_rpcs: int | None
    active_rpc_count: int


class PollerAdmission(grpc.ServerInterceptor):
    """See the module docs. Build it, pass it as the server's first interceptor, then
    :meth:`attach` the server."""

    def __init__(self, governance: Governance) -> None:
        self._governance = governance
        self._state: _ServerState | None = None  # grpc's, once attached
        self._static_cap: int | None = None  # the server's own maximum_concurrent_rpcs
        self._cap: int | None = None  # the limit we last set (None: the static one is in force)

    def attach(self, server: grpc.Server) -> bool:
        """Take over ``server``'s concurrency limit; False (and no effect) if grpc changed."""
        state = getattr(server, "_state", None)
        if not (hasattr(state, "maximum_concurrent_rpcs") and hasattr(state, "active_rpc_count")):
            _log.info("grpc server internals changed: adaptive admission stays in the handlers")
            return False
        assert state is not None
        self._static_cap = state.maximum_concurrent_rpcs
        self._state = state
        return True

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        state = self._state
        if state is not None:
            try:
                self._admit(state, handler_call_details.method)
            except Exception:  # telemetry never fails a call: the chain still decides
                report_hook_failure(self, "intercept_service")
        return continuation(handler_call_details)

    def _admit(self, state: _ServerState, method: str) -> None:
        snapshot = self._governance.snapshot()
        adaptive = snapshot.adaptive if snapshot.rules.enabled else None
        # While our limit is in force it is grpc's: grpc refuses this call as soon as we return,
        # having compared the same numbers.
        if self._cap is not None and state.active_rpc_count >= self._cap:
            reason = (adaptive.shed_elsewhere() if adaptive is not None else "") or "overload"
            self._governance.recorder.decision_for(method, "adaptive", REJECTED, reason)
        wanted = adaptive.admission_cap() if adaptive is not None else None
        if wanted is not None and self._static_cap is not None:
            wanted = min(wanted, self._static_cap)
        if wanted != self._cap:
            self._cap = wanted
            state.maximum_concurrent_rpcs = self._static_cap if wanted is None else wanted
