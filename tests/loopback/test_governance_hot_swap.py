"""Governance rules swapped on a live loopback server: a hot swap mid-traffic fails no call in
flight, invalid rules are refused while the old ones stay, and governance switches off and on.
"""

from __future__ import annotations

import threading
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from governance_loopback import limit_rules
from helpers import wait_until

from telemetry.governance import Governance, RuleError

# -- rules: hot swap and invalid rules ------------------------------------------------------------


def test_rules_hot_swap_mid_traffic_fails_no_in_flight_call(sync_service: Any) -> None:
    gov = Governance(
        {"server": {"methods": {"*": {"rate_limit": {"algorithm": "concurrency", "limit": 64}}}}}
    )
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    failures: list[BaseException] = []
    done = threading.Event()
    completed = [0]

    def traffic() -> None:
        while not done.is_set():
            try:
                stub.Unary(echo_pb2.EchoRequest(text="x", sleep_seconds=0.01), timeout=10)
                completed[0] += 1
            except grpc.RpcError as error:
                failures.append(error)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for generation in range(20):
            limit = (
                64 + generation
            )  # a different rule every time: new limiter, old calls finish on theirs
            gov.apply(
                {
                    "server": {
                        "methods": {"*": {"rate_limit": {"algorithm": "concurrency", "limit": limit}}}
                    }
                }
            )
            target = completed[0] + 2
            wait_until(lambda t=target: completed[0] >= t, message="calls complete after a swap")
    finally:
        done.set()
        for worker in workers:
            worker.join(10)
    assert failures == []
    assert gov.generation == 21


def test_invalid_rules_are_refused_and_the_old_ones_stay(sync_service: Any) -> None:
    gov = Governance(limit_rules(1))
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    stub.Unary(echo_pb2.EchoRequest(text="x"))
    before = gov.rules
    with pytest.raises(RuleError, match=r"server\.methods\['\*'\]\.rate_limit\.limit"):
        gov.apply(
            {"server": {"methods": {"*": {"rate_limit": {"algorithm": "fixed_window", "limit": -1}}}}}
        )
    assert gov.rules == before
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_governance_can_be_switched_off_and_on(sync_service: Any) -> None:
    gov = Governance(limit_rules(1))
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    gov.apply({**limit_rules(1), "enabled": False})
    for _ in range(3):
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    gov.apply(limit_rules(1))  # on again: the same limiter, which counted nothing while off
    stub.Unary(echo_pb2.EchoRequest(text="x"))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
