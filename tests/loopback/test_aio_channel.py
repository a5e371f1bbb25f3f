"""The aio channel's direct unary calls (telemetry.rpc.aio_channel): what grpc.aio's own calls do
(await twice, cancel, code and metadata, calls nobody awaits), with the chain finished in the
awaiting coroutine, and the caller's own interceptors still run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from helpers import make_config, metric_value, wait_until_async
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.rpc.aio_channel import InstrumentedAioChannel
from telemetry.testing import SpanCapture

UNARY = {"grpc_type": "unary", "grpc_service": "telemetry.test.Echo", "grpc_method": "Unary"}


class Caller:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.spans = SpanCapture()
        self.tel = telemetry.Telemetry(
            make_config("caller"), registry=self.registry, span_processors=[self.spans.processor]
        )

    def handled(self, code: str) -> float:
        return metric_value(self.registry, "grpc_client_handled_total", **UNARY, grpc_code=code)

    def in_flight(self) -> float:
        return metric_value(self.registry, "grpc_client_in_flight", **UNARY)


async def test_unary_calls_skip_grpc_aio_interceptors_and_behave_like_grpcs_own(
    aio_service: Any,
) -> None:
    server = await aio_service("b")
    caller = Caller()
    channel = caller.tel.aio_channel(server.target)
    assert isinstance(channel, InstrumentedAioChannel)
    stub = echo_pb2_grpc.EchoStub(channel)
    call = stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=10)
    first = await call
    assert await call == first  # awaited again: the same answer, no second call
    assert await call.code() == grpc.StatusCode.OK and call.done()
    assert caller.handled("OK") == 1 and caller.in_flight() == 0
    (span,) = caller.spans.wait_for(lambda ss: len(ss) == 1)
    assert span.name == "telemetry.test.Echo/Unary" and span.kind.name == "CLIENT"
    await channel.close()
    caller.tel.shutdown()


async def test_a_failed_call_raises_on_every_await_and_is_counted_once(aio_service: Any) -> None:
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        call = echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(fail="abort"), timeout=10)
        for _ in range(2):
            try:
                await call
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("the call should fail")
    assert caller.handled("NotFound") == 1 and caller.in_flight() == 0
    caller.tel.shutdown()


@pytest.mark.parametrize("fail", ["", "abort"])
async def test_coroutines_awaiting_one_call_together_share_its_outcome(
    aio_service: Any, fail: str
) -> None:
    """Two tasks await the same call at once: one attempt, both get its answer (or its error),
    and it is counted once."""
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        call = echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="x", fail=fail),
                                                     timeout=10)  # fmt: skip

        async def outcome() -> Any:
            try:
                return (await call).text
            except grpc.aio.AioRpcError as error:
                return error.code()

        first, second = await asyncio.gather(outcome(), outcome())
    assert first == second == ("x" if not fail else grpc.StatusCode.NOT_FOUND)
    assert caller.handled("NotFound" if fail else "OK") == 1 and caller.in_flight() == 0
    caller.tel.shutdown()


async def test_a_call_nobody_awaits_is_still_finished(aio_service: Any) -> None:
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        call = echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="x"), timeout=10)
        await wait_until_async(lambda: caller.handled("OK") == 1, message="the chain finished")
        assert call.done() and caller.in_flight() == 0
    caller.spans.wait_for(lambda ss: len(ss) == 1)
    caller.tel.shutdown()


async def test_a_cancelled_call_is_counted_cancelled(aio_service: Any) -> None:
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        call = await _cancelled_under_way(channel)
        assert call.cancelled()
        await wait_until_async(lambda: caller.handled("Canceled") == 1, message="counted cancelled")
    assert caller.in_flight() == 0
    caller.tel.shutdown()


@pytest.mark.parametrize("retries", [False, True])
async def test_awaiting_a_cancelled_call_again_raises_again(aio_service: Any, retries: bool) -> None:
    """As grpc.aio's own call: every later await raises the cancellation again (it used to wait
    for an outcome nobody would give), on a plain channel and on one that retries."""
    server = await aio_service("b")
    rules = {"client": {"methods": {"*": {"idempotent": True, "retry": {"max_attempts": 2}}}}}
    tel = telemetry.Telemetry(make_config("caller"), registry=CollectorRegistry(),
                              governance=rules if retries else None)  # fmt: skip
    async with tel.aio_channel(server.target) as channel:
        call = await _cancelled_under_way(channel)
        for _ in range(2):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(call, 5)  # bounded: before the fix it waited for ever
    tel.shutdown()


async def _cancelled_under_way(channel: Any) -> Any:
    """A slow call, awaited by a task, cancelled once under way; returned when the task ended."""
    call = echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(sleep_seconds=5), timeout=10)
    task = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # the call is under way
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return call


class Tagging(grpc.aio.UnaryUnaryClientInterceptor):
    """The caller's own interceptor: adds a header the server echoes nowhere, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls += 1
        return await continuation(details, request)


async def test_the_callers_interceptors_still_run_after_the_chain(aio_service: Any) -> None:
    server = await aio_service("b")
    caller = Caller()
    tagging = Tagging()
    async with caller.tel.aio_channel(server.target, interceptors=[tagging]) as channel:
        reply = await echo_pb2_grpc.EchoStub(channel).Unary(echo_pb2.EchoRequest(text="x"), timeout=10)
    assert reply.text == "x" and tagging.calls == 1
    assert caller.handled("OK") == 1
    caller.tel.shutdown()


async def test_client_spans_end_before_the_handler_that_made_them_returns(aio_service: Any) -> None:
    """The relay a -> b, 200 times: a's CLIENT span ends in the coroutine that awaited the call,
    so never after a's SERVER span (it ended from a done-callback task before)."""
    b = await aio_service("b")
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(200):
            await stub.Unary(echo_pb2.EchoRequest(text="x", hops=[b.target]), timeout=10)
    spans = a.spans.wait_for(lambda ss: len(ss) == 400)
    servers = {s.context.span_id: s for s in spans if s.kind.name == "SERVER"}
    clients = [s for s in spans if s.kind.name == "CLIENT"]
    assert len(clients) == 200
    late = [c for c in clients if c.end_time > servers[c.parent.span_id].end_time]
    assert not late


async def test_write_style_client_streams_count_each_message(aio_service: Any) -> None:
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        call = echo_pb2_grpc.EchoStub(channel).ClientStream(timeout=10)
        for text in ("a", "b", "c"):
            await call.write(echo_pb2.EchoRequest(text=text))
        await call.done_writing()
        await call
    stream = {"grpc_type": "client_stream", "grpc_service": "telemetry.test.Echo",
              "grpc_method": "ClientStream"}  # fmt: skip
    assert metric_value(caller.registry, "grpc_client_msg_sent_total", **stream) == 3
    assert metric_value(caller.registry, "grpc_client_in_flight", **stream) == 0
    caller.tel.shutdown()


async def test_a_refused_client_stream_behaves_like_a_finished_grpc_call(aio_service: Any) -> None:
    """Refused before it started (a bulkhead of 1, taken): writing raises grpc.aio's error for a
    finished call, awaiting raises the refusal, as with grpc.aio's interceptor path."""
    server = await aio_service("b")
    rules = {"client": {"methods": {"*": {"bulkhead": {"max_concurrent": 1}}}}}
    caller = telemetry.Telemetry(make_config("caller"), registry=CollectorRegistry(), governance=rules)
    async with caller.aio_channel(server.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        holding = stub.ClientStream(timeout=10)  # holds the one permit until it ends
        refused = stub.ClientStream(timeout=10)
        assert isinstance(refused, grpc.aio.StreamUnaryCall) and refused.done()
        assert await refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        seen: list[Any] = []
        refused.add_done_callback(seen.append)
        assert seen == [refused]
        with pytest.raises(asyncio.InvalidStateError):
            await refused.write(echo_pb2.EchoRequest(text="x"))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await refused
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await holding.write(echo_pb2.EchoRequest(text="held"))
        await holding.done_writing()
        await holding
    caller.shutdown()


async def test_stream_calls_are_grpc_aio_calls_of_their_kind(aio_service: Any) -> None:
    """What ``isinstance`` code written for grpc.aio's calls expects, and a done-callback that gets
    the call it was added to (grpc.aio passes the call itself)."""
    server = await aio_service("b")
    caller = Caller()
    async with caller.tel.aio_channel(server.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        server_stream = stub.ServerStream(echo_pb2.EchoRequest(text="x"), timeout=10)
        client_stream = stub.ClientStream(timeout=10)
        bidi = stub.Bidi(timeout=10)
        assert isinstance(server_stream, grpc.aio.UnaryStreamCall)
        assert isinstance(client_stream, grpc.aio.StreamUnaryCall)
        assert isinstance(bidi, grpc.aio.StreamStreamCall)
        done: list[Any] = []
        for call in (server_stream, client_stream, bidi):
            call.add_done_callback(done.append)
        assert [reply.text async for reply in server_stream]
        await client_stream.write(echo_pb2.EchoRequest(text="x"))
        await client_stream.done_writing()
        await client_stream
        await bidi.write(echo_pb2.EchoRequest(text="x"))
        await bidi.done_writing()
        assert [reply.text async for reply in bidi]
        for call in (server_stream, client_stream, bidi):
            assert await call.code() == grpc.StatusCode.OK and call.done()
        await wait_until_async(lambda: len(done) == 3)
        assert {id(call) for call in done} == {id(server_stream), id(client_stream), id(bidi)}
    caller.tel.shutdown()
