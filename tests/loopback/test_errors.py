"""Handler failures: an unexpected exception is INTERNAL for the client (no message, no stack), ERROR
with exactly one exception event on the span, and logged once with its stack; ``context.abort`` codes
pass through untouched."""

from __future__ import annotations

from typing import Any

import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from calls import KINDS, call_aio, call_sync, requests_for, settle


def check_unexpected(service: Any, failure: Any, logs: Any, kind: str) -> None:
    assert failure.code() == grpc.StatusCode.INTERNAL
    assert failure.details() == "internal error"
    assert "secret" not in str(failure) and "Traceback" not in str(failure)

    span = service.spans.wait_for(lambda ss: len(ss) == 1)[0]
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["exception"]  # exactly one exception event
    assert span.events[0].attributes["exception.type"] == "RuntimeError"
    assert span.attributes["rpc.response.status_code"] == "INTERNAL"
    assert span.attributes["error.type"] == "INTERNAL"

    lines = logs.wait_for(lambda es: any(e.get("event") == "finished call" for e in es))
    access = [e for e in lines if e.get("event") == "finished call"]
    assert len(access) == 1
    assert access[0]["level"] == "error"
    assert access[0]["grpc.code"] == "Internal"
    assert access[0]["grpc.method_type"] == kind
    assert "RuntimeError: secret internal detail" in access[0]["exception"]
    assert not [e for e in lines if "Exception calling application" in str(e.get("event"))]


def check_aborted(service: Any, failure: Any, logs: Any) -> None:
    assert failure.code() == grpc.StatusCode.NOT_FOUND
    assert failure.details() == "no such thing"
    span = service.spans.wait_for(lambda ss: len(ss) == 1)[0]
    assert span.attributes["rpc.response.status_code"] == "NOT_FOUND"
    assert span.status.status_code.name == "UNSET"  # not a server error per the gRPC conventions
    assert not span.events
    lines = logs.wait_for(lambda es: any(e.get("event") == "finished call" for e in es))
    (access,) = [e for e in lines if e.get("event") == "finished call"]
    assert access["grpc.code"] == "NotFound"
    assert access["grpc.error"] == "no such thing"
    assert access["level"] == "info"
    assert "exception" not in access


@pytest.mark.parametrize("kind", KINDS)
def test_sync_unexpected_exception_is_internal(kind: str, sync_service: Any, logs: Any) -> None:
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel, pytest.raises(grpc.RpcError) as failure:
        call_sync(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, [], fail="raise"))
    check_unexpected(a, failure.value, logs, kind)


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_unexpected_exception_is_internal(kind: str, aio_service: Any, logs: Any) -> None:
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call_aio(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, [], fail="raise"))
    await settle([a], [1], logs, access_lines=1)
    check_unexpected(a, failure.value, logs, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_sync_abort_code_passes_through(kind: str, sync_service: Any, logs: Any) -> None:
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel, pytest.raises(grpc.RpcError) as failure:
        call_sync(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, [], fail="abort"))
    check_aborted(a, failure.value, logs)


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_abort_code_passes_through(kind: str, aio_service: Any, logs: Any) -> None:
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call_aio(echo_pb2_grpc.EchoStub(channel), kind, requests_for(kind, [], fail="abort"))
    await settle([a], [1], logs, access_lines=1)
    check_aborted(a, failure.value, logs)


def test_client_span_records_downstream_failure(sync_service: Any, logs: Any) -> None:
    b = sync_service("b")
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel, pytest.raises(grpc.RpcError) as failure:
        call_sync(
            echo_pb2_grpc.EchoStub(channel),
            "unary",
            requests_for("unary", [b.target], fail="abort"),
        )
    # A's handler did not catch B's NOT_FOUND: unexpected for A, so INTERNAL to A's caller.
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    client = next(s for s in a.spans.spans() if s.kind.name == "CLIENT")
    assert client.status.status_code.name == "ERROR"  # any non-OK code is an error for a client
    assert client.attributes["rpc.response.status_code"] == "NOT_FOUND"


UNDECODABLE = b"\xff" * 9  # field 31, wire type 7: no protobuf parser takes it


def check_undecodable(service: Any, failure: Any, logs: Any) -> None:
    """Answered as grpc-go answers it, and seen: a span and an access line, no stack or parser text."""
    assert failure.code() == grpc.StatusCode.INTERNAL
    assert failure.details() == "grpc: error unmarshalling request"
    span = service.spans.wait_for(lambda ss: len(ss) == 1)[0]
    assert span.attributes["rpc.response.status_code"] == "INTERNAL"
    lines = logs.wait_for(lambda es: any(e.get("event") == "finished call" for e in es))
    (access,) = [e for e in lines if e.get("event") == "finished call"]
    assert access["grpc.code"] == "Internal" and "exception" not in access


@pytest.mark.parametrize("method", ["Unary", "ServerStream"])
def test_sync_a_request_that_does_not_decode_is_internal_and_observed(
    method: str, sync_service: Any, logs: Any
) -> None:
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel, pytest.raises(grpc.RpcError) as failure:
        if method == "Unary":
            unary: grpc.UnaryUnaryMultiCallable[bytes, bytes]
            unary = channel.unary_unary("/telemetry.test.Echo/Unary")
            unary(UNDECODABLE, timeout=5)
        else:
            stream: grpc.UnaryStreamMultiCallable[bytes, bytes]
            stream = channel.unary_stream("/telemetry.test.Echo/ServerStream")
            list(stream(UNDECODABLE, timeout=5))
    check_undecodable(a, failure.value, logs)


@pytest.mark.parametrize("method", ["Unary", "ServerStream"])
async def test_aio_a_request_that_does_not_decode_is_internal_and_observed(
    method: str, aio_service: Any, logs: Any
) -> None:
    """grpc.aio alone answers UNKNOWN with the parser's exception text."""
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            if method == "Unary":
                unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
                unary = channel.unary_unary("/telemetry.test.Echo/Unary")
                await unary(UNDECODABLE, timeout=5)
            else:
                stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes]
                stream = channel.unary_stream("/telemetry.test.Echo/ServerStream")
                async for _ in stream(UNDECODABLE, timeout=5):
                    pass
    await settle([a], [1], logs, access_lines=1)
    check_undecodable(a, failure.value, logs)
