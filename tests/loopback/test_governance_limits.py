"""Server-side governance on real loopback servers, sync and aio: rate limits answer
RESOURCE_EXHAUSTED with a retry hint for every RPC kind, a bulkhead caps calls in flight beside a
limit, keyed limits isolate users and let VIPs through, a server fallback answers limited calls,
brownout refuses its share, and shedding turns off low-priority writes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from calls import KINDS, call_aio, call_sync, requests_for
from governance_loopback import ECHO, decisions, limit_rules
from helpers import metric_value, trailers, wait_until_async

from telemetry.governance import Governance
from telemetry.panel.controls import set_concurrency_cap

# -- server side: limits ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sync_rate_limit_returns_resource_exhausted_with_retry_hint(
    sync_service: Any, kind: str
) -> None:
    b = sync_service("b", governance=limit_rules(1))
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    call_sync(stub, kind, requests_for(kind, []))
    with pytest.raises(grpc.RpcError) as refused:
        call_sync(stub, kind, requests_for(kind, []))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailing = dict(trailers(refused.value))
    assert int(trailing["grpc-retry-pushback-ms"]) > 0
    assert trailing["x-governance"] == "rejected:rate_limit"
    method = {"unary": "Unary", "server_stream": "ServerStream", "client_stream": "ClientStream"}.get(
        kind, "Bidi"
    )
    assert decisions(b.registry, "rate_limit", "rejected", method) == 1
    # the refused call is traced and counted like any other
    spans = b.spans.wait_for(lambda ss: len(ss) == 2)
    refused_span = max(spans, key=lambda s: s.start_time or 0)
    assert [e.name for e in refused_span.events] == ["governance.rejected"]
    handled = metric_value(
        b.registry, "grpc_server_handled_total", grpc_type=kind, grpc_service=ECHO, grpc_method=method,
        grpc_code="ResourceExhausted",
    )  # fmt: skip
    assert handled == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_aio_rate_limit_returns_resource_exhausted(aio_service: Any, kind: str) -> None:
    b = await aio_service("b", governance=limit_rules(1))
    async with grpc.aio.insecure_channel(b.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        await call_aio(stub, kind, requests_for(kind, []))
    # A sync client (in a thread: the server shares this loop) for the refused call: when a server
    # ends a request stream early, the aio client may still be writing and then reports INTERNAL
    # ("Failed execute_batch") instead of the status the server sent.
    sync_stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    with pytest.raises(grpc.RpcError) as refused:
        await asyncio.to_thread(call_sync, sync_stub, kind, requests_for(kind, []))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "grpc-retry-pushback-ms" in dict(trailers(refused.value))


async def hold_two_unary_calls(stub: Any, registry: Any) -> list[asyncio.Future[Any]]:
    """Two Unary calls that sleep 2 s in the handler, once the server counts both in flight."""
    held = [asyncio.ensure_future(stub.Unary(echo_pb2.EchoRequest(text="h", sleep_seconds=2)))
            for _ in range(2)]  # fmt: skip
    unary = {"grpc_type": "unary", "grpc_service": ECHO, "grpc_method": "Unary"}
    await wait_until_async(
        lambda: metric_value(registry, "grpc_server_in_flight", **unary) == 2,
        message="two calls in flight",
    )
    return held


async def test_aio_server_bulkhead_caps_calls_in_flight_beside_a_rate_limit(aio_service: Any) -> None:
    """A server bulkhead refuses the call over its cap while the others run, and frees the slot
    when they end; the method's rate limit (a cluster limit, say) still applies beside it."""
    rules = {"server": {"methods": {f"{ECHO}/Unary": {
        "rate_limit": {"algorithm": "fixed_window", "limit": 4, "window": 3600},
        "bulkhead": {"max_concurrent": 2},
    }}}}  # fmt: skip
    b = await aio_service("b", governance=rules)
    async with grpc.aio.insecure_channel(b.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        held = await hold_two_unary_calls(stub, b.registry)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Unary(echo_pb2.EchoRequest(text="x"))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(refused.value.trailing_metadata())["x-governance"] == "rejected:bulkhead"
        assert [reply.text for reply in await asyncio.gather(*held)] == ["h", "h"]
        assert (await stub.Unary(echo_pb2.EchoRequest(text="y"))).text == "y"  # slots freed
        # The limit's window counted all four, the bulkhead's refusal too (the limit admits first).
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await stub.Unary(echo_pb2.EchoRequest(text="z"))
        assert dict(limited.value.trailing_metadata())["x-governance"] == "rejected:rate_limit"
    assert decisions(b.registry, "bulkhead", "rejected") == 1
    assert decisions(b.registry, "rate_limit", "rejected") == 1


async def test_a_service_cap_counts_methods_with_rules_of_their_own(aio_service: Any) -> None:
    """The panel's service cap (``set_concurrency_cap``): one count for every method, Unary's own
    rule (a rate limit) sharing ``*``'s bulkhead, so two Unary calls in flight fill the cap of a
    ServerStream call too."""
    own = {"server": {"methods": {f"{ECHO}/Unary": {
        "rate_limit": {"algorithm": "token_bucket", "limit": 1000},
    }}}}  # fmt: skip
    rules = {"server": set_concurrency_cap(2)(own["server"])}
    b = await aio_service("b", governance=rules)
    async with grpc.aio.insecure_channel(b.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        held = await hold_two_unary_calls(stub, b.registry)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call_aio(stub, "server_stream", requests_for("server_stream", []))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(refused.value.trailing_metadata())["x-governance"] == "rejected:bulkhead"
        assert [reply.text for reply in await asyncio.gather(*held)] == ["h", "h"]
        assert len(await call_aio(stub, "server_stream", requests_for("server_stream", []))) == 2


def test_keyed_limit_isolates_users_and_lets_vips_through(sync_service: Any) -> None:
    limit = {"algorithm": "fixed_window", "limit": 1, "window": 3600}
    rules = {
        "server": {
            "methods": {"*": {"rate_limit": {**limit, "key": "metadata:x-user", "allow": ["vip"]}}}
        }
    }
    b = sync_service("b", governance=rules)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))

    def call(user: str) -> grpc.StatusCode:
        try:
            stub.Unary(echo_pb2.EchoRequest(text="x"), metadata=[("x-user", user)])
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert [call("alice"), call("alice"), call("bob")] == [
        grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OK,
    ]  # fmt: skip
    assert {call("vip") for _ in range(5)} == {grpc.StatusCode.OK}


def test_server_fallback_answers_limited_calls(sync_service: Any) -> None:
    gov = Governance(limit_rules(1, fallback={"mode": "default"}))
    gov.register_fallback(f"{ECHO}/Unary", default=echo_pb2.EchoReply(text="degraded"))
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    assert stub.Unary(echo_pb2.EchoRequest(text="x")).text == "x"
    reply, call = stub.Unary.with_call(echo_pb2.EchoRequest(text="y"))
    assert reply.text == "degraded"
    assert dict(call.trailing_metadata())["x-governance"] == "fallback:rate_limit"
    assert decisions(b.registry, "rate_limit", "fallback") == 1


def test_brownout_refuses_its_share_and_can_answer_with_the_fallback(sync_service: Any) -> None:
    # The worked example of adding a mechanism (docs/governance.md): module, rule, registry line.
    gov = Governance({"server": {"methods": {f"{ECHO}/Unary": {"brownout": {"share": 1.0}}}}})
    b = sync_service("b", governance=gov)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "brownout: 100% of calls"
    trailing = dict(trailers(refused.value))
    assert (trailing["x-governance"], trailing["grpc-retry-pushback-ms"]) == (
        "rejected:brownout",
        "1000",
    )
    assert decisions(b.registry, "brownout", "rejected") == 1
    gov.apply(
        {
            "server": {
                "methods": {
                    f"{ECHO}/Unary": {"brownout": {"share": 1.0}, "fallback": {"mode": "default"}}
                }
            }
        }
    )
    gov.register_fallback(f"{ECHO}/Unary", default=echo_pb2.EchoReply(text="later"))
    reply, call = stub.Unary.with_call(echo_pb2.EchoRequest(text="y"))
    assert reply.text == "later"
    assert dict(call.trailing_metadata())["x-governance"] == "fallback:brownout"
    gov.apply({"server": {"methods": {f"{ECHO}/Unary": {"brownout": {"share": 0}}}}})
    assert stub.Unary(echo_pb2.EchoRequest(text="z")).text == "z"  # 0: every call passes


def test_shedding_turns_off_low_priority_writes_first(sync_service: Any) -> None:
    pressure = {"cpu": 0.75}
    rules = {
        "shedding": {"enabled": True, "levels": [0.7, 0.8, 0.9]},
        "server": {"methods": {
            f"{ECHO}/Unary": {"priority": "low", "write": True},
            f"{ECHO}/ServerStream": {"priority": "critical"},
        }},
    }  # fmt: skip
    b = sync_service("b", governance=Governance(rules, cpu=lambda: pressure["cpu"]))
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(b.target))
    with pytest.raises(grpc.RpcError) as shed:
        stub.Unary(echo_pb2.EchoRequest(text="x"))
    assert shed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    pressure["cpu"] = 0.99
    assert len(list(stub.ServerStream(echo_pb2.EchoRequest(text="x", count=1)))) == 1  # critical stays
    pressure["cpu"] = 0.2
    assert stub.Unary(echo_pb2.EchoRequest(text="x")).text == "x"
