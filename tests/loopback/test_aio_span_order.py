"""A grpc.aio handler's CLIENT spans end before its own SERVER span does.

The client span of a call made by a handler is ended in the coroutine that awaits the call (single
response) or consumes its response stream, so it ends before the handler returns. Streams used to
end theirs from a done-callback task, which could run after the handler had returned: with the
relay below (it returns as soon as the downstream call is over), 8 of 3,000 server-streaming and 4
of 1,000 bidi relays ended their client span 35-250 us after their server span; none since. The
assertion holds whatever the scheduling: no sleeps, no timing thresholds. The last tests check the
chain still finishes once however a caller follows a call (write/read style, errors, cancelling).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from calls import call_aio, requests_for
from helpers import make_config, metric_value, wait_until_async
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing import SpanCapture

RELAYS = {"server_stream": 300, "unary": 300, "client_stream": 100, "bidi_stream": 100}


class TightRelay(echo_pb2_grpc.EchoServicer):
    """Relays every call to the next hop and returns the moment the downstream call is over: no
    await between the end of the client call and the end of the handler."""

    def __init__(self, build: str = "aio_channel") -> None:
        self.tel: telemetry.Telemetry | None = None  # set once the service is up
        self._stub: Any = None
        self._build = build  # tel.aio_channel, or a plain channel with tel.aio_client_interceptors

    def _next(self, request: Any) -> Any:
        if self._stub is None:
            assert self.tel is not None
            target = request.hops[0]
            if self._build == "aio_channel":
                channel = self.tel.aio_channel(target)
            else:
                interceptors = self.tel.aio_client_interceptors(target)
                channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
            self._stub = echo_pb2_grpc.EchoStub(channel)
        return self._stub

    @staticmethod
    def _down(request: Any) -> Any:
        return echo_pb2.EchoRequest(text=request.text, count=request.count)

    async def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self._next(request).Unary(self._down(request))

    async def ServerStream(self, request: Any, context: Any) -> None:  # noqa: N802
        async for reply in self._next(request).ServerStream(self._down(request)):
            await context.write(reply)

    async def ClientStream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        requests = [r async for r in request_iterator]
        return await self._next(requests[0]).ClientStream(iter([self._down(r) for r in requests]))

    async def Bidi(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        requests = [r async for r in request_iterator]
        async for reply in self._next(requests[0]).Bidi(iter([self._down(r) for r in requests])):
            yield reply


@pytest.mark.parametrize("build", ["aio_channel", "interceptors"])
@pytest.mark.parametrize("kind", list(RELAYS))
async def test_every_client_span_ends_before_its_server_span(
    kind: str, build: str, aio_service: Any
) -> None:
    b = await aio_service("b")
    servicer = TightRelay(build)
    a = await aio_service("a", servicer=servicer)
    servicer.tel = a.tel
    relays = RELAYS[kind]
    async with grpc.aio.insecure_channel(a.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(relays):
            replies = await call_aio(stub, kind, requests_for(kind, [b.target]))
            assert replies and replies[0].hops[0].service == "b"
    # Each relay: a SERVER span in a, and a CLIENT span in a (child of it) for the call to b.
    spans = await a.spans.wait_for_async(lambda ss: len(ss) >= 2 * relays)
    servers = {s.context.span_id: s for s in spans if s.kind.name == "SERVER"}
    clients = [s for s in spans if s.kind.name == "CLIENT"]
    assert len(servers) == len(clients) == relays
    late = []
    for client in clients:
        assert client.parent is not None
        server = servers[client.parent.span_id]
        assert client.end_time is not None and server.end_time is not None
        if client.end_time > server.end_time:
            late.append((client.end_time - server.end_time) / 1e3)  # microseconds
    assert not late, (
        f"{kind}: {len(late)} of {relays} client spans ended after their server span (us): {late}"
    )


# -- the chain finishes once, however the caller follows the call ----------------------------------

STREAMS = {
    "server_stream": {"grpc_type": "server_stream", "grpc_method": "ServerStream"},
    "client_stream": {"grpc_type": "client_stream", "grpc_method": "ClientStream"},
    "bidi_stream": {"grpc_type": "bidi_stream", "grpc_method": "Bidi"},
}


class Caller:
    """A handle whose aio channel calls ``b``: its client spans and client metrics."""

    def __init__(self, target: str) -> None:
        self.registry = CollectorRegistry()
        self.spans = SpanCapture()
        self.tel = telemetry.Telemetry(
            make_config("caller"), registry=self.registry, span_processors=[self.spans.processor]
        )
        self.channel = self.tel.aio_channel(target)
        self.stub = echo_pb2_grpc.EchoStub(self.channel)

    def handled(self, kind: str, code: str) -> float:
        labels = {**STREAMS[kind], "grpc_service": "telemetry.test.Echo", "grpc_code": code}
        return metric_value(self.registry, "grpc_client_handled_total", **labels)

    async def close(self) -> None:
        await self.channel.close()
        self.tel.shutdown()


def ended(caller: Caller) -> list[Any]:
    """The caller's client spans ended so far (each RPC ends its span once: SpanCapture sees it
    at its end)."""
    return [s for s in caller.spans.spans() if s.kind.name == "CLIENT"]


async def test_write_style_and_read_style_calls_finish_when_their_status_is_seen(
    aio_service: Any,
) -> None:
    b = await aio_service("b")
    caller = Caller(b.target)
    try:
        call = caller.stub.ClientStream()
        await call.write(echo_pb2.EchoRequest(text="w0"))
        await call.write(echo_pb2.EchoRequest(text="w1"))
        await call.done_writing()
        reply = await call
        assert reply.text == "w0+w1"
        assert len(ended(caller)) == 1  # ended before the await returned
        assert await call == reply and await call.code() == grpc.StatusCode.OK  # again: no second end

        call = caller.stub.ServerStream(echo_pb2.EchoRequest(text="r", count=3))
        read = []
        while (message := await call.read()) is not grpc.aio.EOF:
            read.append(message.text)
        assert read == ["r-0", "r-1", "r-2"]
        assert len(ended(caller)) == 2  # ended before read() returned EOF
        assert caller.handled("client_stream", "OK") == caller.handled("server_stream", "OK") == 1
    finally:
        await caller.close()


@pytest.mark.parametrize("kind", ["server_stream", "bidi_stream"])
async def test_a_failed_stream_ends_its_span_as_the_error_is_raised(kind: str, aio_service: Any) -> None:
    b = await aio_service("b")
    caller = Caller(b.target)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call_aio(caller.stub, kind, requests_for(kind, [], fail="abort"))
        assert failure.value.code() == grpc.StatusCode.NOT_FOUND
        (span,) = ended(caller)  # already ended when the error reached the caller
        assert span.attributes["rpc.response.status_code"] == "NOT_FOUND"
        assert span.status.status_code.name == "ERROR"
        assert caller.handled(kind, "NotFound") == 1
    finally:
        await caller.close()


async def test_a_stream_left_unread_ends_by_its_done_callback_once(aio_service: Any) -> None:
    b = await aio_service("b")
    caller = Caller(b.target)
    try:
        call = caller.stub.ServerStream(echo_pb2.EchoRequest(text="r", count=50))
        async for _ in call:
            break  # the caller walks away; nobody reads the status
        call.cancel()
        spans = await caller.spans.wait_for_async(lambda ss: len(ss) >= 1)
        assert [(s.attributes or {}).get("rpc.response.status_code") for s in spans] == ["CANCELLED"]
        await wait_until_async(lambda: caller.handled("server_stream", "Canceled") == 1)
        assert await call.code() == grpc.StatusCode.CANCELLED
        for _ in range(3):  # let any second finish run: there is none
            await asyncio.sleep(0)
        assert len(ended(caller)) == 1 and caller.handled("server_stream", "Canceled") == 1
    finally:
        await caller.close()


async def test_a_cancelled_consumer_ends_the_span_cancelled(aio_service: Any) -> None:
    b = await aio_service("b")
    caller = Caller(b.target)
    try:
        request = echo_pb2.EchoRequest(text="slow", sleep_seconds=5.0)

        async def consume() -> None:
            async for _ in caller.stub.ServerStream(request):
                pass

        task = asyncio.ensure_future(consume())
        started = {"grpc_type": "server_stream", "grpc_service": "telemetry.test.Echo"}
        await wait_until_async(
            lambda: metric_value(
                b.registry, "grpc_server_started_total", **started, grpc_method="ServerStream"
            )
        )
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        (span,) = ended(caller)  # ended in the cancelled coroutine itself
        assert span.attributes["rpc.response.status_code"] == "CANCELLED"
        assert caller.handled("server_stream", "Canceled") == 1
    finally:
        await caller.close()
