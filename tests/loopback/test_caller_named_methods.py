"""A server with a generic handler serves any method its callers name: an attacker naming a new
one per call must not grow metric label sets, governance tables or memory (issue 17). Real sync
and aio servers on loopback, every method answered, the governance rules on "*"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from helpers import make_config
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import telemetry
from telemetry.governance import engine
from telemetry.governance.observe import MAX_METHOD_LABELS

METHODS = MAX_METHOD_LABELS + 150
PLAN_CAP = 100
RULES = {
    "server": {
        "methods": {
            "*": {
                # Refuses nearly every call: each refusal is a decision labelled with its method.
                "rate_limit": {"algorithm": "token_bucket", "limit": 1, "burst": 1},
                "fallback": {"mode": "last_good"},
            }
        }
    }
}


def echo(request: bytes, context: Any) -> bytes:
    return request


async def aio_echo(request: bytes, context: Any) -> bytes:
    return request


class AnyMethod(grpc.GenericRpcHandler):
    def __init__(self, behavior: Any) -> None:
        self._handler: grpc.RpcMethodHandler[bytes, bytes]
        self._handler = grpc.unary_unary_rpc_method_handler(behavior)

    def service(self, handler_call_details: Any) -> Any:
        return self._handler


def methods_per_family(registry: CollectorRegistry) -> dict[str, int]:
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {
        family.name: len({
            (s.labels.get("grpc_service"), s.labels["grpc_method"])
            for s in family.samples if "grpc_method" in s.labels
        })
        for family in families
    }  # fmt: skip


def calls(index: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A new method (and baggage user) per call: every table keyed by either sees a new key."""
    return f"/evil{index}.S/M{index}", (("baggage", f"user=u{index}"),)


@pytest.fixture
def small_plan_cap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(engine, "MAX_PLANS", PLAN_CAP)
    yield


def check(tel: telemetry.Telemetry, registry: CollectorRegistry, codes: list[grpc.StatusCode]) -> None:
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > METHODS - 10
    counted = methods_per_family(registry)
    assert max(counted.values()) == MAX_METHOD_LABELS + 1, counted  # the cap, plus "other"
    assert counted["governance_decisions"] == MAX_METHOD_LABELS + 1
    governance = tel.governance
    assert governance is not None
    assert len(governance.snapshot().server_plans) == PLAN_CAP
    assert governance._instances.count("last_good") == PLAN_CAP


def test_sync_server_keeps_its_tables_bounded(small_plan_cap: None) -> None:
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("generic"), registry=registry, governance=RULES)
    server = tel.server(max_workers=4)
    server.add_generic_rpc_handlers((AnyMethod(echo),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            codes = []
            for index in range(METHODS):
                method, metadata = calls(index)
                call: grpc.UnaryUnaryMultiCallable[bytes, bytes]
                # grpcio's private keyword (generated stubs pass it); types-grpcio leaves it out.
                call = channel.unary_unary(method, _registered_method=False)  # type: ignore[call-arg]
                try:
                    call(b"x", timeout=5, metadata=metadata)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
        check(tel, registry, codes)
    finally:
        server.stop(None).wait(5)
        tel.shutdown()


async def test_aio_server_keeps_its_tables_bounded(small_plan_cap: None) -> None:
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("generic"), registry=registry, governance=RULES)
    server = tel.aio_server()
    server.add_generic_rpc_handlers((AnyMethod(aio_echo),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            codes = []
            for index in range(METHODS):
                method, metadata = calls(index)
                unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
                unary = channel.unary_unary(method)
                try:
                    await unary(b"x", timeout=5, metadata=metadata)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
        check(tel, registry, codes)
    finally:
        await server.stop(None)
        tel.shutdown()
