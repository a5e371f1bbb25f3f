"""PollerAdmission without grpc's server internals: it stays detached and changes nothing.
(tests/loopback/test_governance.py covers it on a real server.)"""

from __future__ import annotations

from typing import Any

from telemetry.governance import Governance
from telemetry.rpc.admission import PollerAdmission


class _Details:
    method = "/pkg.Svc/M"


def test_a_server_without_the_expected_internals_is_left_alone() -> None:
    admission = PollerAdmission(Governance({"adaptive": {"enabled": True}}, cpu=lambda: 0.99))
    assert not admission.attach(object())
    assert not admission.attached
    handler: Any = object()
    assert admission.intercept_service(lambda details: handler, _Details()) is handler
