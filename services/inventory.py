"""inventory (sync gRPC): stock and prices. Two instances run in the stack, balanced by order; each
keeps its OWN stock table (a shard of the shop's stock, in this process's memory).

Reserve is all-or-nothing: the quantities of a SKU listed on several lines are summed, every total
is checked and every unit taken under one lock (the sync server runs handlers on several threads),
so stock never goes negative. It fails the order when it fails: NOT_FOUND for an unknown SKU,
FAILED_PRECONDITION when stock is short, INVALID_ARGUMENT for a malformed request (the field named).
Its reply carries this instance's id: the units are held HERE, per order id (bounded memory), until
order's compensation calls Release on this same instance when a later step fails (payment refused,
say). Release is idempotent and remembers the order id, so a Reserve arriving after order gave up on
it (its deadline passed) is refused instead of leaking units. A retried Reserve of an order already
held answers the same reservation again.

Stock refills itself when short (``restock_when_short``: a demo runs for hours), counted in
``restocked`` so the books still balance: initial + restocked = available + held by orders.
GetStock is what the load generator's "scraper" hammers: a per-user rate limit (baggage ``user``)
protects it.
"""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

import telemetry
from services import config, runtime
from services.catalog import CATALOG
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_QUANTITY = 1000  # per line, as the gateway checks
MAX_ORDER_ID = 64

log = telemetry.get_logger("services.inventory")


@dataclass(frozen=True)
class Reservation:
    reply: pb.ReserveReply
    units: dict[str, int]  # SKU -> total quantity held


def totals(items: Sequence[pb.Item]) -> dict[str, int]:
    """SKU -> total quantity over the lines: an order listing a SKU several times needs the sum."""
    summed: collections.Counter[str] = collections.Counter()
    for item in items:
        summed[item.sku] += item.quantity
    return dict(summed)


class Inventory(pb_grpc.InventoryServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node
        stock = int(config.require(node.settings, "stock_per_sku", int))
        self._prices = dict(CATALOG)
        self._stock = dict.fromkeys(CATALOG, stock)
        self._refill = dict(self._stock)
        self._restock = bool(node.settings.get("restock_when_short", True))
        self.restocked = dict.fromkeys(CATALOG, 0)
        self._keep = int(node.settings.get("reservations_kept", 10_000))
        discovery = node.tel.discovery
        # The id order finds this instance by in discovery, to release where it reserved.
        self.instance_id = discovery.instance_id if discovery is not None else uuid.uuid4().hex[:12]
        self._held: collections.OrderedDict[str, Reservation] = collections.OrderedDict()
        self._released: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()  # guards stock, held and released together

    def Reserve(self, request: pb.ReserveRequest, context: Any) -> pb.ReserveReply:  # noqa: N802
        self._check_reserve(request, context)
        wanted = totals(request.items)
        telemetry.add_log_fields(order_id=request.order_id, items=len(request.items))
        self._node.simulated_io("db.update stock", "db_latency_ms", **{"db.system.name": "sqlite"})
        with self._lock:
            held = self._held.get(request.order_id)
            if held is not None:  # a retry of a reservation already made: hold nothing more
                return held.reply
            if request.order_id in self._released:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"order_id: {request.order_id!r} was already released")  # fmt: skip
            return self._take(request.order_id, wanted, context)

    def _check_reserve(self, request: pb.ReserveRequest, context: Any) -> None:
        """Abort a malformed request (INVALID_ARGUMENT) or one naming an unknown SKU (NOT_FOUND)."""
        if not request.order_id or len(request.order_id) > MAX_ORDER_ID:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"order_id: 1..{MAX_ORDER_ID} characters")
        if not request.items:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "items: at least one is required")
        for index, item in enumerate(request.items):
            if not 0 < item.quantity <= MAX_QUANTITY:
                message = f"items[{index}].quantity: must be 1..{MAX_QUANTITY}, got {item.quantity}"
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
            if item.sku not in self._prices:
                context.abort(grpc.StatusCode.NOT_FOUND, f"items[{index}].sku: unknown {item.sku!r}")

    def _take(self, order_id: str, wanted: dict[str, int], context: Any) -> pb.ReserveReply:
        """Take every unit ``wanted`` and hold them for ``order_id``, or none (the lock is held)."""
        short = [sku for sku, quantity in wanted.items() if self._stock[sku] < quantity]
        if short:
            if self._restock:
                self._refill_shelves(short)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"out of stock: {', '.join(short)}")
        for sku, quantity in wanted.items():
            self._stock[sku] -= quantity
        total = sum(self._prices[sku] * quantity for sku, quantity in wanted.items())
        reply = pb.ReserveReply(reservation_id=uuid.uuid4().hex[:12], total_cents=total,
                                instance_id=self.instance_id)  # fmt: skip
        self._held[order_id] = Reservation(reply, wanted)
        while len(self._held) > self._keep:  # the oldest are long settled: forget, keep units
            self._held.popitem(last=False)
        return reply

    def _refill_shelves(self, skus: Iterable[str]) -> None:
        """The demo's nightly delivery, right now: back to the initial stock, counted (lock held)."""
        for sku in skus:
            self.restocked[sku] += max(0, self._refill[sku] - self._stock[sku])
            self._stock[sku] = max(self._stock[sku], self._refill[sku])

    def Release(self, request: pb.ReleaseRequest, context: Any) -> pb.ReleaseReply:  # noqa: N802
        if not request.order_id or len(request.order_id) > MAX_ORDER_ID:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"order_id: 1..{MAX_ORDER_ID} characters")
        telemetry.add_log_fields(order_id=request.order_id)
        with self._lock:
            held = self._held.pop(request.order_id, None)
            if held is not None:
                for sku, quantity in held.units.items():
                    self._stock[sku] += quantity
            # Remembered either way: a late Reserve of this order must not take units again.
            self._released[request.order_id] = None
            self._released.move_to_end(request.order_id)
            while len(self._released) > self._keep:
                self._released.popitem(last=False)
        units = sum(held.units.values()) if held is not None else 0
        if held is not None:
            log.info("reservation released", order_id=request.order_id, units=units)
        return pb.ReleaseReply(released=held is not None, instance_id=self.instance_id, units=units)

    def GetStock(self, request: pb.GetStockRequest, context: Any) -> pb.StockReply:  # noqa: N802
        if not request.sku:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku: required")
        self._node.simulated_io("cache.get stock", "cache_latency_ms", **{"db.system.name": "redis"})
        if request.sku not in self._prices:
            context.abort(grpc.StatusCode.NOT_FOUND, f"sku: unknown {request.sku!r}")
        return pb.StockReply(
            sku=request.sku, available=self._stock[request.sku], price_cents=self._prices[request.sku]
        )

    def books(self) -> tuple[dict[str, int], dict[str, int]]:
        """(available, held by orders) per SKU, read together under the lock (for checks)."""
        with self._lock:
            held = dict.fromkeys(self._stock, 0)
            for reservation in self._held.values():
                for sku, quantity in reservation.units.items():
                    held[sku] += quantity
            return dict(self._stock), held


def add_servicers(server: Any, node: runtime.Node) -> Iterable[str]:
    pb_grpc.add_InventoryServicer_to_server(Inventory(node), server)
    return ["demoshop.v1.Inventory"]


if __name__ == "__main__":
    runtime.serve("inventory", add_servicers)
