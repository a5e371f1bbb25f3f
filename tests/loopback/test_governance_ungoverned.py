"""gRPC's health service is never governed: a server whose every method is rate limited (the
limit used up) still answers its health checks, sync and aio, so an orchestrator probing an
overloaded instance does not restart it for shedding load; the limit still holds for the rest.
"""

from __future__ import annotations

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from echo_service import AioEcho, SyncEcho
from governance_loopback import decisions, limit_rules
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from helpers import make_config
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.rpc.server_governance import UNGOVERNED

CHECKS = 20


def test_the_health_service_is_named_as_grpc_names_it() -> None:
    assert health_pb2.DESCRIPTOR.services_by_name["Health"].full_name in UNGOVERNED


def test_sync_health_checks_pass_a_used_up_limit() -> None:
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("limited"), registry=registry, governance=limit_rules(1))
    server = tel.server(max_workers=4)
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(tel), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = echo_pb2_grpc.EchoStub(channel)
            echo.Unary(echo_pb2.EchoRequest(text="first"))
            with pytest.raises(grpc.RpcError) as refused:
                echo.Unary(echo_pb2.EchoRequest(text="second"))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            checker = health_pb2_grpc.HealthStub(channel)
            for _ in range(CHECKS):
                reply = checker.Check(health_pb2.HealthCheckRequest(service=""))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Only the echo call was refused; no decision was made about a health check at all.
        assert decisions(registry, "rate_limit", "rejected") == 1
    finally:
        server.stop(grace=None).wait(5)
        tel.shutdown()


async def test_aio_health_checks_pass_a_used_up_limit() -> None:
    registry = CollectorRegistry()
    tel = telemetry.Telemetry(make_config("limited"), registry=registry, governance=limit_rules(1))
    server = tel.aio_server()
    echo_pb2_grpc.add_EchoServicer_to_server(AioEcho(tel), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = echo_pb2_grpc.EchoStub(channel)
            await echo.Unary(echo_pb2.EchoRequest(text="first"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await echo.Unary(echo_pb2.EchoRequest(text="second"))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            checker = health_pb2_grpc.HealthStub(channel)
            for _ in range(CHECKS):
                reply = await checker.Check(health_pb2.HealthCheckRequest(service=""))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert decisions(registry, "rate_limit", "rejected") == 1
    finally:
        await server.stop(None)
        tel.shutdown()
