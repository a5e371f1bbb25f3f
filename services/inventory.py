"""inventory (sync gRPC): stock and prices. Two instances run in the stack, balanced by order.

Reserve fails the order when it fails: NOT_FOUND for an unknown SKU, FAILED_PRECONDITION when
stock is short, INVALID_ARGUMENT for a malformed request. Stock refills itself (a demo runs for
hours). GetStock is what the load generator's "scraper" hammers: a per-user rate limit (baggage
``user``) protects it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import grpc

import telemetry
from services import config, runtime
from services.catalog import CATALOG
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_QUANTITY = 100


class Inventory(pb_grpc.InventoryServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node
        stock = int(config.require(node.settings, "stock_per_sku", int))
        self._prices = dict(CATALOG)
        self._stock = dict.fromkeys(CATALOG, stock)
        self._refill = dict(self._stock)
        self._lock = threading.Lock()

    def Reserve(self, request: pb.ReserveRequest, context: Any) -> pb.ReserveReply:  # noqa: N802
        if not request.items:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "items: at least one is required")
        for index, item in enumerate(request.items):
            if not 0 < item.quantity <= MAX_QUANTITY:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"items[{index}].quantity: must be 1..{MAX_QUANTITY}")  # fmt: skip
            if item.sku not in self._prices:
                context.abort(grpc.StatusCode.NOT_FOUND, f"items[{index}].sku: unknown {item.sku!r}")
        telemetry.add_log_fields(order_id=request.order_id, items=len(request.items))
        self._node.simulated_io("db.update stock", "db_latency_ms", **{"db.system.name": "sqlite"})
        with self._lock:
            short = [i.sku for i in request.items if self._stock[i.sku] < i.quantity]
            if short:
                for sku in short:  # the demo's nightly delivery, right now
                    self._stock[sku] = self._refill[sku]
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"out of stock: {', '.join(short)}")
            for item in request.items:
                self._stock[item.sku] -= item.quantity
        total = sum(self._prices[i.sku] * i.quantity for i in request.items)
        return pb.ReserveReply(reservation_id=uuid.uuid4().hex[:12], total_cents=total)

    def GetStock(self, request: pb.GetStockRequest, context: Any) -> pb.StockReply:  # noqa: N802
        if not request.sku:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku: required")
        self._node.simulated_io("cache.get stock", "cache_latency_ms", **{"db.system.name": "redis"})
        if request.sku not in self._prices:
            context.abort(grpc.StatusCode.NOT_FOUND, f"sku: unknown {request.sku!r}")
        return pb.StockReply(
            sku=request.sku, available=self._stock[request.sku], price_cents=self._prices[request.sku]
        )


def add_servicers(server: Any, node: runtime.Node) -> Iterable[str]:
    pb_grpc.add_InventoryServicer_to_server(Inventory(node), server)
    return ["demoshop.v1.Inventory"]


if __name__ == "__main__":
    runtime.serve("inventory", add_servicers)
