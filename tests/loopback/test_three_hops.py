"""A -> B -> C over real loopback servers, sync and aio, for all four RPC kinds.

One trace with correct parent/child links, the caller's traceparent continued, baggage from the
caller read at C, every service's log lines carrying the trace id, one access line per side.
"""

from __future__ import annotations

import itertools
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import grpc.aio
import pytest
from calls import INCOMING, KINDS, PARENT_ID, TRACE_ID, call_aio, call_sync, requests_for, settle


def span_of(service: Any, kind: str) -> Any:
    spans = service.spans.wait_for(lambda ss: any(s.kind.name == kind for s in ss))
    matching = [s for s in spans if s.kind.name == kind]
    assert len(matching) == 1, [s.name for s in spans]
    return matching[0]


def check_chain(
    a: Any, b: Any, c: Any, kind: str, replies: list[Any], logs: Any, client_lines: bool
) -> None:
    hops = replies[0].hops
    assert [h.service for h in hops] == ["a", "b", "c"]
    assert {h.trace_id for h in hops} == {TRACE_ID}
    assert hops[2].baggage_user == "alice"

    a_server, a_client = span_of(a, "SERVER"), span_of(a, "CLIENT")
    b_server, b_client = span_of(b, "SERVER"), span_of(b, "CLIENT")
    c_server = span_of(c, "SERVER")
    chain = [a_server, a_client, b_server, b_client, c_server]
    assert {format(s.context.trace_id, "032x") for s in chain} == {TRACE_ID}
    assert format(a_server.parent.span_id, "016x") == PARENT_ID
    for parent, child in itertools.pairwise(chain):
        assert child.parent.span_id == parent.context.span_id, (parent.name, child.name)
    method = {"unary": "Unary", "server_stream": "ServerStream"}.get(kind)
    method = method or {"client_stream": "ClientStream", "bidi_stream": "Bidi"}[kind]
    for span in chain:
        assert span.name == f"telemetry.test.Echo/{method}"
        assert span.attributes["rpc.system.name"] == "grpc"
        assert span.attributes["rpc.response.status_code"] == "OK"
    assert a_client.attributes["server.address"] == "127.0.0.1"

    events = logs.wait_for(
        lambda es: (
            {e.get("service") for e in es if e.get("event") == "handling"} >= {"a", "b", "c"}
            and len([e for e in es if e.get("event") == "finished call"]) >= (5 if client_lines else 3)
        )
    )
    handling = [e for e in events if e.get("event") == "handling"]
    assert {e["trace_id"] for e in handling} == {TRACE_ID}
    access = [e for e in events if e.get("event") == "finished call"]
    servers = [e for e in access if e["grpc.component"] == "server"]
    clients = [e for e in access if e["grpc.component"] == "client"]
    assert sorted(e["service"] for e in servers) == ["a", "b", "c"]  # exactly one line each
    # By default a successful call is logged once, by its server; "all" adds the clients' lines.
    assert sorted(e["service"] for e in clients) == (["a", "b"] if client_lines else [])
    for line in access:
        assert line["trace_id"] == TRACE_ID
        assert line["grpc.code"] == "OK"
        assert line["grpc.method_type"] == kind
    assert all(e["echo_text"] == "r0" for e in servers)  # field added by the handler


@pytest.mark.parametrize("kind", KINDS)
def test_sync_three_hops_one_trace(kind: str, sync_service: Any, logs: Any) -> None:
    c = sync_service("c")
    b = sync_service("b")
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel:
        replies = call_sync(
            echo_pb2_grpc.EchoStub(channel),
            kind,
            requests_for(kind, [b.target, c.target]),
            metadata=INCOMING,
            timeout=10,
        )
    check_chain(a, b, c, kind, replies, logs, client_lines=False)


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_three_hops_one_trace(kind: str, aio_service: Any, logs: Any) -> None:
    c = await aio_service("c", client_access_log="all")
    b = await aio_service("b", client_access_log="all")
    a = await aio_service("a", client_access_log="all")
    async with grpc.aio.insecure_channel(a.target) as channel:
        replies = await call_aio(
            echo_pb2_grpc.EchoStub(channel),
            kind,
            requests_for(kind, [b.target, c.target]),
            metadata=INCOMING,
            timeout=10,
        )
    await settle([a, b, c], [2, 2, 1], logs, access_lines=5)
    check_chain(a, b, c, kind, replies, logs, client_lines=True)


@pytest.mark.parametrize("kind", KINDS)
def test_sync_malformed_traceparent_starts_new_trace(kind: str, sync_service: Any, logs: Any) -> None:
    b = sync_service("b")
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel:
        replies = call_sync(
            echo_pb2_grpc.EchoStub(channel),
            kind,
            requests_for(kind, [b.target]),
            metadata=(("traceparent", "00-not-a-trace-zz"),),
            timeout=10,
        )
    trace_ids = {h.trace_id for h in replies[0].hops}
    assert len(trace_ids) == 1
    (new_trace,) = trace_ids
    assert len(new_trace) == 32 and new_trace not in ("0" * 32, TRACE_ID)
    assert span_of(a, "SERVER").parent is None  # a root: the bad header was ignored
    assert not [e for e in logs.events if e.get("level") == "error"]


async def test_aio_malformed_traceparent_starts_new_trace(aio_service: Any, logs: Any) -> None:
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        reply = await echo_pb2_grpc.EchoStub(channel).Unary(
            echo_pb2.EchoRequest(text="x"), metadata=(("traceparent", "garbage"),), timeout=10
        )
    assert len(reply.hops[0].trace_id) == 32
    await settle([a], [1], logs, access_lines=1)
    assert span_of(a, "SERVER").parent is None


def test_sync_baggage_set_in_a_handler_reaches_c(sync_service: Any) -> None:
    c = sync_service("c")
    b = sync_service("b")
    a = sync_service("a")
    with grpc.insecure_channel(a.target) as channel:
        reply = echo_pb2_grpc.EchoStub(channel).Unary(
            echo_pb2.EchoRequest(hops=[b.target, c.target], set_user="bob"), timeout=10
        )
    assert [h.baggage_user for h in reply.hops] == ["", "bob", "bob"]  # set by A, read at B and C


async def test_aio_baggage_set_in_a_handler_reaches_c(aio_service: Any) -> None:
    c = await aio_service("c")
    b = await aio_service("b")
    a = await aio_service("a")
    async with grpc.aio.insecure_channel(a.target) as channel:
        reply = await echo_pb2_grpc.EchoStub(channel).Unary(
            echo_pb2.EchoRequest(hops=[b.target, c.target], set_user="bob"), timeout=10
        )
    assert [h.baggage_user for h in reply.hops] == ["", "bob", "bob"]
