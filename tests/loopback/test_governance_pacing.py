"""A leaky bucket with ``max_wait`` paces calls on real loopback servers, sync and grpc.aio: calls
that arrive together are served one by one, ``1/limit`` apart (a sync handler thread sleeps its
turn; an aio call is held by its own coroutine while the loop serves others), and a call whose turn
is further away than ``max_wait`` is refused. Bounds are lower bounds on the spacing: the bucket
guarantees them, a slow machine only adds to them.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc

BUNCH = 5
LIMIT = 10.0  # calls/s: turns 0.1 s apart


def pacing(max_wait: float) -> dict[str, Any]:
    limit = {"algorithm": "leaky_bucket", "limit": LIMIT, "max_wait": max_wait}
    return {"server": {"methods": {"*": {"rate_limit": limit}}}}


def _outcomes(results: list[Any]) -> tuple[list[float], list[grpc.StatusCode]]:
    served = sorted(r for r in results if isinstance(r, float))
    refused = [r for r in results if isinstance(r, grpc.StatusCode)]
    return served, refused


def _sync_call(stub: Any, began: float) -> float | grpc.StatusCode:
    try:
        stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
    except grpc.RpcError as exc:
        return exc.code()
    return time.monotonic() - began


async def _aio_call(stub: Any, began: float) -> float | grpc.StatusCode:
    try:
        await stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return time.monotonic() - began


def test_sync_calls_that_arrive_together_are_served_in_turn(sync_service: Any) -> None:
    service = sync_service("paced", governance=pacing(max_wait=1.0))
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(service.target))
    stub.Unary(echo_pb2.EchoRequest(text="warm"))  # takes the first turn: the bunch queues
    began = time.monotonic()
    with ThreadPoolExecutor(BUNCH) as pool:
        served, refused = _outcomes(list(pool.map(lambda _: _sync_call(stub, began), range(BUNCH))))
    assert not refused and len(served) == BUNCH
    assert served[-1] >= (BUNCH - 1) / LIMIT  # the last waited for the turns before its own


async def test_aio_calls_that_arrive_together_are_held_in_turn(aio_service: Any) -> None:
    service = await aio_service("paced", governance=pacing(max_wait=1.0))
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        await stub.Unary(echo_pb2.EchoRequest(text="warm"))
        began = time.monotonic()
        results = await asyncio.gather(*(_aio_call(stub, began) for _ in range(BUNCH)))
    served, refused = _outcomes(list(results))
    # Held, not refused (before, an aio server refused every call but the first of a bunch).
    assert not refused and len(served) == BUNCH
    assert served[-1] >= (BUNCH - 1) / LIMIT


async def test_aio_calls_whose_turn_is_too_far_are_refused(aio_service: Any) -> None:
    service = await aio_service("paced", governance=pacing(max_wait=0.15))
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        began = time.monotonic()
        results = await asyncio.gather(*(_aio_call(stub, began) for _ in range(BUNCH)))
    served, refused = _outcomes(list(results))
    # Turns 0, 0.1 (and 0.2 only if the bunch straddled a turn) are within 0.15 s: the rest wait
    # longer than max_wait and are refused at once.
    assert 1 <= len(served) <= 3
    assert refused and set(refused) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
