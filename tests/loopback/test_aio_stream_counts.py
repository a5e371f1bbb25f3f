"""Stream messages are counted whatever concerns the chain has: with metrics, each message runs
the chain's message hooks; without any (tracing and the access log only), the grpc.aio adapters
count it themselves, with no call per message. Both sides, async-generator handlers and
response iteration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import echo_pb2
import echo_pb2_grpc
import pytest
from helpers import make_config, metric_value

import telemetry

REPLIES = 3


class GeneratorStream(echo_pb2_grpc.EchoServicer):
    """ServerStream as an async generator (the adapter's one-layer path)."""

    async def ServerStream(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        for i in range(request.count):
            yield echo_pb2.EchoReply(text=f"{request.text}-{i}")


@pytest.mark.parametrize("metrics", [True, False])
async def test_stream_messages_are_counted_with_and_without_message_hooks(
    logs: Any, metrics: bool
) -> None:
    server_tel = telemetry.Telemetry(make_config("streamer"))
    caller_tel = telemetry.Telemetry(make_config("reader", client_access_log="all"))
    server = server_tel.aio_server(metrics=metrics)
    echo_pb2_grpc.add_EchoServicer_to_server(GeneratorStream(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        channel = caller_tel.aio_channel(f"127.0.0.1:{port}", metrics=metrics)
        async with channel:
            call = echo_pb2_grpc.EchoStub(channel).ServerStream(
                echo_pb2.EchoRequest(text="m", count=REPLIES), timeout=10
            )
            texts = [reply.text async for reply in call]
        assert texts == [f"m-{i}" for i in range(REPLIES)]
        lines = logs.wait_for(
            lambda events: len([e for e in events if e.get("event") == "finished call"]) == 2
        )
        finished = {e["grpc.component"]: e for e in lines if e.get("event") == "finished call"}
        assert (finished["server"]["grpc.msgs_received"], finished["server"]["grpc.msgs_sent"]) == (
            1, REPLIES,
        )  # fmt: skip
        assert (finished["client"]["grpc.msgs_sent"], finished["client"]["grpc.msgs_received"]) == (
            1, REPLIES,
        )  # fmt: skip
        if metrics:
            labels = {"grpc_type": "server_stream", "grpc_service": "telemetry.test.Echo",
                      "grpc_method": "ServerStream"}  # fmt: skip
            sent = metric_value(server_tel.registry, "grpc_server_msg_sent_total", **labels)
            received = metric_value(caller_tel.registry, "grpc_client_msg_received_total", **labels)
            assert (sent, received) == (REPLIES, REPLIES)
    finally:
        await server.stop(None)
        server_tel.shutdown()
        caller_tel.shutdown()
