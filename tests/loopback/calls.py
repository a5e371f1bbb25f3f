"""Call the Echo service with any of the four RPC kinds, sync or aio."""

from __future__ import annotations

from typing import Any

import echo_pb2

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
KINDS = ("unary", "server_stream", "client_stream", "bidi_stream")
INCOMING = (
    ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
    ("baggage", "user=alice"),
)


def requests_for(kind: str, hops: list[str], **fields: Any) -> Any:
    first = echo_pb2.EchoRequest(text="r0", hops=hops, count=2, **fields)
    if kind in ("unary", "server_stream"):
        return first
    return [first, echo_pb2.EchoRequest(text="r1", hops=hops, **fields)]


def call_sync(stub: Any, kind: str, request: Any, **kw: Any) -> list[Any]:
    if kind == "unary":
        return [stub.Unary(request, **kw)]
    if kind == "server_stream":
        return list(stub.ServerStream(request, **kw))
    if kind == "client_stream":
        return [stub.ClientStream(iter(request), **kw)]
    return list(stub.Bidi(iter(request), **kw))


async def call_aio(stub: Any, kind: str, request: Any, **kw: Any) -> list[Any]:
    if kind == "unary":
        return [await stub.Unary(request, **kw)]
    if kind == "server_stream":
        return [r async for r in stub.ServerStream(request, **kw)]
    if kind == "client_stream":
        return [await stub.ClientStream(iter(request), **kw)]
    return [r async for r in stub.Bidi(iter(request), **kw)]


async def settle(services: list[Any], spans: list[int], logs: Any, access_lines: int) -> None:
    """Let aio servers sharing the test's event loop finish their calls before sync checks run."""
    for service, count in zip(services, spans, strict=True):
        await service.spans.wait_for_async(lambda ss, n=count: len(ss) >= n)
    await logs.wait_for_async(
        lambda es: len([e for e in es if e.get("event") == "finished call"]) >= access_lines
    )
