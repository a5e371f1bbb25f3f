"""PollerAdmission against a stand-in for grpc's server state (the two attributes it relies on),
with a fake clock; tests/loopback/test_governance_live_state.py covers it on a real server."""

from __future__ import annotations

from typing import Any, cast

import grpc

from telemetry.governance import Governance
from telemetry.rpc.admission import PollerAdmission
from telemetry.testing import FakeClock


class _Details:
    method = "/pkg.Svc/M"
    invocation_metadata: tuple[tuple[str, str | bytes], ...] = ()


class _State:
    def __init__(self, maximum: int | None) -> None:
        self.maximum_concurrent_rpcs = maximum
        self.active_rpc_count = 0


class _Server:
    def __init__(self, maximum: int | None) -> None:
        self._state = _State(maximum)


def _admit(admission: PollerAdmission) -> None:
    admission.intercept_service(lambda details: None, _Details())


def test_a_server_without_the_expected_internals_is_left_alone() -> None:
    admission = PollerAdmission(Governance({"adaptive": {"enabled": True}}, cpu=lambda: 0.99))
    assert not admission.attach(cast(grpc.Server, object()))
    handler: Any = object()
    assert admission.intercept_service(lambda details: handler, _Details()) is handler


def test_the_limit_follows_the_limiter_within_the_servers_own_and_refusals_count() -> None:
    clock, cpu = FakeClock(), {"value": 0.99}
    gov = Governance(
        {"adaptive": {"enabled": True, "max_limit": 50, "cool_off": 0.5}},
        clock=clock,
        cpu=lambda: cpu["value"],
    )
    server = _Server(maximum=8)
    admission = PollerAdmission(gov)
    assert admission.attach(cast(grpc.Server, server))
    adaptive = gov.snapshot().adaptive
    assert adaptive is not None
    clock.advance(0.15)  # the limiter reads the CPU once its first bucket has ended
    _admit(admission)
    cap = adaptive.admission_cap()
    assert cap is not None
    assert server._state.maximum_concurrent_rpcs == min(cap, 8)  # never above the server's own

    server._state.active_rpc_count = server._state.maximum_concurrent_rpcs
    _admit(admission)  # grpc refuses this one: counted, and the limiter's cool-off starts
    assert gov.recorder.counts()[("adaptive", "pkg.Svc", "M", "rejected")] == 1
    assert adaptive.last_shed == clock()

    cpu["value"] = 0.1
    clock.advance(1.0)  # pressure gone and the cool-off over: the server's own limit is back
    server._state.active_rpc_count = 0
    _admit(admission)
    assert server._state.maximum_concurrent_rpcs == 8
    assert gov.recorder.counts()[("adaptive", "pkg.Svc", "M", "rejected")] == 1
