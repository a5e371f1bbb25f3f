"""The relay Echo service the tests run on real loopback servers, sync and aio.

Each hop records the trace id, its parent span id, the ``user`` baggage entry and the remaining
deadline it sees, logs a line, then forwards to the next hop with the same RPC kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

import telemetry


def _hop(service: str) -> Any:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    parent = getattr(span, "parent", None)
    left = telemetry.remaining()
    return echo_pb2.Hop(
        service=service,
        trace_id=format(ctx.trace_id, "032x") if ctx.is_valid else "",
        parent_span_id=format(parent.span_id, "016x") if parent is not None else "",
        baggage_user=str(baggage.get_baggage("user") or ""),
        remaining_seconds=-1.0 if left is None else left,
    )


@contextmanager
def _baggage_from(request: Any) -> Iterator[None]:
    """Handler code setting baggage through the OpenTelemetry API; calls made inside carry it."""
    if not request.set_user:
        yield
        return
    token = otel_context.attach(baggage.set_baggage("user", request.set_user))
    try:
        yield
    finally:
        otel_context.detach(token)


def _downstream(request: Any) -> Any:
    return echo_pb2.EchoRequest(
        text=request.text,
        hops=list(request.hops[1:]),
        fail=request.fail,
        count=request.count,
        sleep_seconds=request.sleep_seconds,
    )


class SyncEcho(echo_pb2_grpc.EchoServicer):
    def __init__(self, tel: telemetry.Telemetry) -> None:
        self._tel = tel
        self._name = tel.config.service_name
        self._stubs: dict[str, Any] = {}
        self._log = telemetry.get_logger("echo")

    def _stub(self, target: str) -> Any:
        if target not in self._stubs:
            self._stubs[target] = echo_pb2_grpc.EchoStub(self._tel.channel(target))
        return self._stubs[target]

    def _work(self, request: Any, context: Any) -> Any:
        self._log.info("handling", text=request.text)
        telemetry.add_log_fields(echo_text=request.text)
        if request.sleep_seconds:
            time.sleep(request.sleep_seconds)
        if not request.hops:
            if request.fail == "raise":
                raise RuntimeError("secret internal detail")
            if request.fail == "abort":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return _hop(self._name)

    def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        hop = self._work(request, context)
        hops = [hop]
        if request.hops:
            with _baggage_from(request):
                hops += self._stub(request.hops[0]).Unary(_downstream(request), timeout=30).hops
        return echo_pb2.EchoReply(text=request.text, hops=hops)

    def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        hop = self._work(request, context)
        below: list[Any] = []
        if request.hops:
            replies = list(self._stub(request.hops[0]).ServerStream(_downstream(request)))
            below = list(replies[0].hops) if replies else []
        for i in range(max(request.count, 1)):
            yield echo_pb2.EchoReply(text=f"{request.text}-{i}", hops=[hop, *below])

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        requests = list(request_iterator)
        first = requests[0]
        hop = self._work(first, context)
        hops = [hop]
        if first.hops:
            reply = self._stub(first.hops[0]).ClientStream(iter([_downstream(r) for r in requests]))
            hops += reply.hops
        return echo_pb2.EchoReply(text="+".join(r.text for r in requests), hops=hops)

    def Bidi(self, request_iterator: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        requests = list(request_iterator)
        first = requests[0]
        hop = self._work(first, context)
        below: list[Any] = []
        if first.hops:
            replies = list(self._stub(first.hops[0]).Bidi(iter([_downstream(r) for r in requests])))
            below = list(replies[0].hops) if replies else []
        for request in requests:
            yield echo_pb2.EchoReply(text=request.text, hops=[hop, *below])


class AioEcho(echo_pb2_grpc.EchoServicer):
    """The same relay for grpc.aio; ServerStream uses ``await context.write()`` on purpose."""

    def __init__(self, tel: telemetry.Telemetry) -> None:
        self._tel = tel
        self._name = tel.config.service_name
        self._stubs: dict[str, Any] = {}
        self._log = telemetry.get_logger("echo")

    def _stub(self, target: str) -> Any:
        if target not in self._stubs:
            self._stubs[target] = echo_pb2_grpc.EchoStub(self._tel.aio_channel(target))
        return self._stubs[target]

    async def _work(self, request: Any, context: Any) -> Any:
        self._log.info("handling", text=request.text)
        telemetry.add_log_fields(echo_text=request.text)
        if request.sleep_seconds:
            await asyncio.sleep(request.sleep_seconds)
        if not request.hops:
            if request.fail == "raise":
                raise RuntimeError("secret internal detail")
            if request.fail == "abort":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return _hop(self._name)

    async def Unary(self, request: Any, context: Any) -> Any:  # noqa: N802
        hops = [await self._work(request, context)]
        if request.hops:
            with _baggage_from(request):
                reply = await self._stub(request.hops[0]).Unary(_downstream(request), timeout=30)
            hops += reply.hops
        return echo_pb2.EchoReply(text=request.text, hops=hops)

    async def ServerStream(self, request: Any, context: Any) -> None:  # noqa: N802
        hop = await self._work(request, context)
        below: list[Any] = []
        if request.hops:
            replies = [r async for r in self._stub(request.hops[0]).ServerStream(_downstream(request))]
            below = list(replies[0].hops) if replies else []
        for i in range(max(request.count, 1)):
            await context.write(echo_pb2.EchoReply(text=f"{request.text}-{i}", hops=[hop, *below]))

    async def ClientStream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802
        requests = [r async for r in request_iterator]
        first = requests[0]
        hops = [await self._work(first, context)]
        if first.hops:
            reply = await self._stub(first.hops[0]).ClientStream(
                iter([_downstream(r) for r in requests])
            )
            hops += reply.hops
        return echo_pb2.EchoReply(text="+".join(r.text for r in requests), hops=hops)

    async def Bidi(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        requests = [r async for r in request_iterator]
        first = requests[0]
        hop = await self._work(first, context)
        below: list[Any] = []
        if first.hops:
            call = self._stub(first.hops[0]).Bidi(iter([_downstream(r) for r in requests]))
            replies = [r async for r in call]
            below = list(replies[0].hops) if replies else []
        for request in requests:
            yield echo_pb2.EchoReply(text=request.text, hops=[hop, *below])
