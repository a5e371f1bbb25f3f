"""The order service: a grpc.aio server that calls inventory through an instrumented channel."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import grpc
import shop_pb2
import shop_pb2_grpc

import telemetry

log = telemetry.get_logger(__name__)


class Order(shop_pb2_grpc.OrderServicer):
    def __init__(self, inventory: Any) -> None:
        self._inventory = inventory

    async def PlaceOrder(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        if not request.user:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user is required")
        order_id = uuid.uuid4().hex[:12]
        telemetry.add_log_fields(order_id=order_id, user=request.user)
        # The caller's deadline travels on: this call gets whatever time is left of it.
        reply = await self._inventory.Reserve(
            shop_pb2.ReserveRequest(sku=request.sku, quantity=request.quantity)
        )
        log.info("order placed", order_id=order_id, remaining=reply.remaining_stock)
        return shop_pb2.PlaceOrderReply(order_id=order_id, remaining_stock=reply.remaining_stock)


async def serve() -> None:
    tel = telemetry.init(service_name="order")
    inventory = shop_pb2_grpc.InventoryStub(
        tel.aio_channel(os.environ.get("INVENTORY_TARGET", "127.0.0.1:50061"))
    )
    server = tel.aio_server()
    shop_pb2_grpc.add_OrderServicer_to_server(Order(inventory), server)
    address = os.environ.get("ORDER_ADDRESS", "127.0.0.1:50062")
    server.add_insecure_port(address)
    await server.start()
    log.info("order serving", address=address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=5)  # finish in-flight calls, then exit
    tel.shutdown()


if __name__ == "__main__":
    asyncio.run(serve())
