"""The public API is what ``telemetry.__all__`` says, and each name is importable."""

from __future__ import annotations

import pytest

import telemetry
import telemetry.governance
import telemetry.testing
from telemetry import process


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(telemetry.__all__)) == len(telemetry.__all__)
    for name in telemetry.__all__:
        assert hasattr(telemetry, name), name
    for name in telemetry.testing.__all__:
        assert hasattr(telemetry.testing, name), name
    for name in telemetry.governance.__all__:
        assert hasattr(telemetry.governance, name), name


def test_public_api_is_exactly_this() -> None:
    assert set(telemetry.__all__) == {
        "AioClientInterceptor",
        "AioServerInterceptor",
        "AioServiceChannel",
        "CallState",
        "Concern",
        "ConfigError",
        "EtcdConfig",
        "ClientInterceptor",
        "AnswerCall",
        "AnsweredCall",
        "FailedCall",
        "Governance",
        "GovernanceRules",
        "Instance",
        "InvalidConcernError",
        "MethodInfo",
        "RateLimitingSampler",
        "RejectCall",
        "RpcKind",
        "RuleError",
        "ServerInterceptor",
        "ServiceChannel",
        "Side",
        "Telemetry",
        "TelemetryConfig",
        "__version__",
        "add_log_fields",
        "current",
        "deadline_scope",
        "get_logger",
        "init",
        "remaining",
    }


def test_current_before_init_explains_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "_current", None)
    with pytest.raises(RuntimeError, match=r"call telemetry.init\(service_name=...\) first"):
        telemetry.current()
