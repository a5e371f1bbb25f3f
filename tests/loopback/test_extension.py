"""The concern extension point: a concern can refuse a call with any status and trailing metadata
(what governance builds on); a concern that crashes is logged and the RPC goes on. Also TLS through
the server and channel helpers."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from calls import KINDS, call_aio, call_sync, requests_for
from echo_service import SyncEcho
from helpers import make_config, trailers

import telemetry
from telemetry import CallState, RejectCall


class Refuse:
    def on_start(self, state: CallState) -> None:
        raise RejectCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", [("retry-after-ms", "250")])

    def on_finish(self, state: CallState) -> None:
        pass


class Crash:
    def on_start(self, state: CallState) -> None:
        raise ZeroDivisionError("bug in a hook")

    def on_finish(self, state: CallState) -> None:
        raise ZeroDivisionError("bug in a hook")


def serve_sync(tel: telemetry.Telemetry, *extra: Any) -> tuple[Any, str]:
    interceptor = telemetry.ServerInterceptor([*tel.server_concerns(), *extra])
    server = grpc.server(ThreadPoolExecutor(4), interceptors=[interceptor])
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(tel), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("kind", KINDS)
def test_server_concern_can_refuse_a_call(kind: str, logs: Any) -> None:
    tel = telemetry.Telemetry(make_config("guarded"))
    server, target = serve_sync(tel, Refuse())
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as failure:
        call_sync(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, []), timeout=5)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("retry-after-ms", "250") in trailers(failure.value)
    assert not logs.matching(event="handling")  # the handler never ran
    (line,) = logs.matching(event="finished call")
    assert line["grpc.code"] == "ResourceExhausted" and line["level"] == "warning"
    server.stop(None)
    tel.shutdown()


@pytest.mark.parametrize("kind", KINDS)
async def test_client_concern_refuses_before_the_network(kind: str, aio_service: Any) -> None:
    b = await aio_service("b")
    tel = telemetry.Telemetry(make_config("caller"))
    core = telemetry.AioClientInterceptor([*tel.client_concerns(b.target), Refuse()], b.target)
    async with grpc.aio.insecure_channel(b.target, interceptors=core.split()) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call_aio(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, []))
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert b.spans.spans() == ()  # nothing reached the server
    tel.shutdown()


def test_sync_client_refusal_is_a_failed_call(sync_service: Any) -> None:
    b = sync_service("b")
    channel = grpc.intercept_channel(
        grpc.insecure_channel(b.target), telemetry.ClientInterceptor([Refuse()])
    )
    stub = echo_pb2_grpc.EchoStub(channel)
    future = stub.Unary.future(echo_pb2.EchoRequest())
    assert isinstance(future.exception(), telemetry.FailedCall)
    assert future.exception().code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError):
        list(stub.ServerStream(echo_pb2.EchoRequest()))
    assert b.spans.spans() == ()


def test_a_crashing_concern_never_fails_the_rpc(logs: Any) -> None:
    tel = telemetry.Telemetry(make_config("buggy"))
    server, target = serve_sync(tel, Crash())
    channel = grpc.intercept_channel(
        grpc.insecure_channel(target), telemetry.ClientInterceptor([Crash()])
    )
    for kind in KINDS:
        assert call_sync(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, []), timeout=5)
    crash_lines = [e for e in logs.events if "telemetry hook Crash" in str(e.get("event"))]
    # Rate-limited: at most one line per (concern, phase), each with the stack.
    assert 1 <= len(crash_lines) <= 4
    assert all("ZeroDivisionError" in e["exception"] for e in crash_lines)
    channel.close()
    server.stop(None)
    tel.shutdown()


def make_certificate(directory: Path) -> tuple[bytes, bytes]:
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key.read_bytes(), cert.read_bytes()


def test_tls_through_the_helpers(tmp_path: Path, logs: Any) -> None:
    key, cert = make_certificate(tmp_path)
    server_tel = telemetry.Telemetry(make_config("tls-server"))
    server = server_tel.server()
    echo_pb2_grpc.add_EchoServicer_to_server(SyncEcho(server_tel), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    client_tel = telemetry.Telemetry(make_config("tls-client", client_access_log="all"))
    with client_tel.channel(
        f"localhost:{port}", credentials=grpc.ssl_channel_credentials(root_certificates=cert)
    ) as ch:
        reply = echo_pb2_grpc.EchoStub(ch).Unary(echo_pb2.EchoRequest(text="secure"), timeout=5)
    assert reply.text == "secure"
    assert {e["service"] for e in logs.matching(event="finished call")} == {
        "tls-server",
        "tls-client",
    }
    server.stop(None)
    server_tel.shutdown()
    client_tel.shutdown()
