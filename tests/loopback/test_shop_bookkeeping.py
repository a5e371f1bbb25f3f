"""The demo shop keeps its books (issue 17): inventory's Reserve is all-or-nothing with the total
per SKU checked (a SKU on several lines is summed), stock never goes negative under concurrent
orders, and Release (order's compensation when a later step fails) puts exactly the reserved units
back, once. Real inventory servicers on loopback gRPC servers; order's side through etcd at the end.
"""

# grpcio-tools' service stubs carry no annotations (as services.* in pyproject.toml)
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from helpers import make_config, wait_until_async

import telemetry
from services import inventory, order, runtime
from services.catalog import CATALOG
from services.payment import Payment
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc
from telemetry.testing import SpanCapture
from telemetry.testing.etcd_server import EtcdServer

SKUS = ("sku-mug", "sku-kettle", "sku-espresso")
CATALOG_SKUS = tuple(CATALOG)


def make_node(name: str, tel: telemetry.Telemetry, **settings: Any) -> runtime.Node:
    """A Node around a test's own handle (Node() would install a process-wide one)."""
    node = runtime.Node.__new__(runtime.Node)
    node.name, node.settings, node.tel, node.rng = name, settings, tel, random.Random(17)
    return node


class Shop:
    """One inventory instance on a loopback server, with a stub to it."""

    def __init__(self, tel: telemetry.Telemetry, **settings: Any) -> None:
        settings = {"stock_per_sku": 100, "restock_when_short": False, "db_latency_ms": [0, 0.2],
                    "cache_latency_ms": [0, 0], **settings}  # fmt: skip
        self.servicer = inventory.Inventory(make_node("inventory", tel, **settings))
        self.server = tel.server(max_workers=8)
        pb_grpc.add_InventoryServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.InventoryStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=None).wait(5)


@pytest.fixture
def shop() -> Iterator[Callable[..., Shop]]:
    started: list[tuple[Shop, telemetry.Telemetry]] = []

    def start(etcd: str | None = None, instance_id: str | None = None, **settings: Any) -> Shop:
        tel = telemetry.Telemetry(make_config("inventory"), etcd=etcd, instance_id=instance_id)
        started.append((Shop(tel, **settings), tel))
        return started[-1][0]

    yield start
    for started_shop, tel in started:
        started_shop.close()
        tel.shutdown()


def items(*lines: tuple[str, int]) -> list[pb.Item]:
    return [pb.Item(sku=sku, quantity=quantity) for sku, quantity in lines]


def reserve(shop: Shop, order_id: str, *lines: tuple[str, int]) -> pb.ReserveReply:
    reply: pb.ReserveReply = shop.stub.Reserve(pb.ReserveRequest(order_id=order_id, items=items(*lines)))
    return reply


def test_totals_sum_the_lines_of_a_repeated_sku() -> None:
    lines = items(("sku-mug", 2000), ("sku-kettle", 1), ("sku-mug", 2000), ("sku-mug", 1))
    assert inventory.totals(lines) == {"sku-mug": 4001, "sku-kettle": 1}
    assert inventory.totals([]) == {}


def test_a_repeated_sku_is_checked_on_its_total_and_nothing_is_taken_when_short(
    shop: Callable[..., Shop],
) -> None:
    s = shop()
    with pytest.raises(grpc.RpcError) as refused:  # 60 + 60 > 100, though each line fits
        reserve(s, "ord_1", ("sku-kettle", 5), ("sku-mug", 60), ("sku-mug", 60))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "sku-mug" in str(refused.value.details())
    available, held = s.servicer.books()
    assert available["sku-mug"] == 100 and available["sku-kettle"] == 100  # all or nothing
    assert sum(held.values()) == 0

    reply = reserve(s, "ord_2", ("sku-mug", 50), ("sku-mug", 50))
    assert reply.total_cents == 100 * 1200 and reply.instance_id == s.servicer.instance_id
    assert s.servicer.books()[0]["sku-mug"] == 0


@pytest.mark.parametrize(("quantity", "index"), [(0, 1), (-5, 1), (1001, 1), (2**31 - 1, 1)])
def test_quantity_out_of_range_is_invalid_and_named(
    shop: Callable[..., Shop], quantity: int, index: int
) -> None:
    s = shop()
    with pytest.raises(grpc.RpcError) as refused:
        reserve(s, "ord_1", ("sku-mug", 1), ("sku-mug", quantity))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"items[{index}].quantity: must be 1..1000" in str(refused.value.details())
    assert s.servicer.books()[0]["sku-mug"] == 100


def test_release_is_idempotent_and_refuses_a_late_reserve(shop: Callable[..., Shop]) -> None:
    s = shop(stock_per_sku=10_000)
    first = reserve(s, "ord_1", ("sku-mug", 1000), ("sku-mug", 1000), ("sku-kettle", 3))
    again = reserve(s, "ord_1", ("sku-mug", 1000), ("sku-mug", 1000), ("sku-kettle", 3))  # a retry
    assert again.reservation_id == first.reservation_id
    assert s.servicer.books()[0]["sku-mug"] == 8000  # taken once

    release = pb.ReleaseRequest(order_id="ord_1", items=items(("sku-mug", 2000), ("sku-kettle", 3)))
    released = s.stub.Release(release)
    assert released.released and released.units == 2003
    assert released.instance_id == s.servicer.instance_id
    twice = s.stub.Release(release)
    assert not twice.released and twice.units == 0
    unknown = s.stub.Release(pb.ReleaseRequest(order_id="ord_never"))
    assert not unknown.released
    available, held = s.servicer.books()
    assert available["sku-mug"] == 10_000 and available["sku-kettle"] == 10_000
    assert sum(held.values()) == 0

    for order_id in ("ord_1", "ord_never"):  # released before it arrived: order gave up on it
        with pytest.raises(grpc.RpcError) as late:
            reserve(s, order_id, ("sku-mug", 1))
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as bad:
        s.stub.Release(pb.ReleaseRequest(order_id=""))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "order_id" in str(bad.value.details())


def test_reservations_remembered_are_bounded(shop: Callable[..., Shop]) -> None:
    s = shop(reservations_kept=3)
    for n in range(5):
        reserve(s, f"ord_{n}", ("sku-mug", 1))
    assert not s.stub.Release(pb.ReleaseRequest(order_id="ord_0")).released  # forgotten: kept
    assert s.stub.Release(pb.ReleaseRequest(order_id="ord_4")).released
    assert s.servicer.books()[0]["sku-mug"] == 96


class Orders:
    """Orders placed concurrently on several instances, a third of them refused "at payment" and
    released on the instance that reserved them (the reply says which); what succeeded, counted per
    instance, and the lowest stock a watcher saw meanwhile."""

    def __init__(self, shops: list[Shop], initial: int) -> None:
        self.shops = shops
        self.by_instance = {s.servicer.instance_id: s for s in shops}
        self.succeeded: dict[str, Counter[str]] = {i: Counter() for i in self.by_instance}
        self.lowest = initial
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def watch(self) -> None:
        """Read the stock while orders run (it must never go below zero)."""
        while not self.stop.is_set():
            for s in self.shops:
                for sku in SKUS:
                    available = s.stub.GetStock(pb.GetStockRequest(sku=sku)).available
                    with self._lock:
                        self.lowest = min(self.lowest, available)

    def place(self, worker: int) -> tuple[int, int]:
        """40 orders with repeated SKUs: (placed, refused for short stock)."""
        rng = random.Random(worker)
        outcomes: Counter[str] = Counter()
        for n in range(40):
            lines = [(rng.choice(SKUS), rng.randint(1, 30)) for _ in range(rng.randint(1, 4))]
            lines.append(lines[0])  # always a repeated SKU
            target = self.shops[(worker + n) % 2]  # the balancing's doing
            outcomes[self._order(target, f"ord_{worker}_{n}", lines, rng)] += 1
        return outcomes["placed"], outcomes["refused"]

    def _order(
        self, target: Shop, order_id: str, lines: list[tuple[str, int]], rng: random.Random
    ) -> str:
        """How it went: "placed", "refused" (stock short) or "released" (payment refused)."""
        try:
            reply = reserve(target, order_id, *lines)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return "refused"
        if rng.random() < 1 / 3:  # payment refused: compensate, on the instance holding the units
            holder = self.by_instance[reply.instance_id]
            assert holder.stub.Release(pb.ReleaseRequest(order_id=order_id)).released
            return "released"
        with self._lock:
            self.succeeded[reply.instance_id].update(inventory.totals(items(*lines)))
        return "placed"


def test_concurrent_orders_never_go_negative_and_the_books_balance(shop: Callable[..., Shop]) -> None:
    """Two instances, each its own stock; 16 threads place orders with repeated SKUs, a third of
    them refused "at payment" and released on the instance that reserved them (the reply says
    which): initial stock = available + held by the orders that succeeded, on each instance."""
    initial = 400
    orders = Orders([shop(stock_per_sku=initial), shop(stock_per_sku=initial)], initial)
    watcher = threading.Thread(target=orders.watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(orders.place, range(16)))
    finally:
        orders.stop.set()
        watcher.join()
    assert sum(p for p, _ in results) > 0 and sum(r for _, r in results) > 0  # stock ran out
    assert orders.lowest >= 0
    for instance_id, s in orders.by_instance.items():
        available, held = s.servicer.books()
        succeeded = orders.succeeded[instance_id]
        for sku in SKUS:
            assert available[sku] >= 0
            assert held[sku] == succeeded[sku]
            assert initial == available[sku] + succeeded[sku], (instance_id, sku)


def test_restocking_is_counted_in_the_books(shop: Callable[..., Shop]) -> None:
    s = shop(restock_when_short=True)
    reserve(s, "ord_1", ("sku-mug", 70))
    with pytest.raises(grpc.RpcError):
        reserve(s, "ord_2", ("sku-mug", 20), ("sku-mug", 20))  # refused, and the shelf refilled
    available, held = s.servicer.books()
    assert available["sku-mug"] == 100 and s.servicer.restocked["sku-mug"] == 70
    assert 100 + s.servicer.restocked["sku-mug"] == available["sku-mug"] + held["sku-mug"]


# -- order's compensation, end to end: etcd, two inventory instances, payment, order ------------


@pytest.fixture
def etcd_endpoint() -> Iterator[str]:
    with EtcdServer() as server:
        yield server.endpoint


class Backends:
    """Payment and order on loopback, found through etcd like the inventory instances."""

    def __init__(self, etcd: str) -> None:
        self.payment_tel = telemetry.Telemetry(make_config("payment"), etcd=etcd, instance_id="payment")
        self.payment_server = self.payment_tel.server(max_workers=8)
        payment = Payment(make_node("payment", self.payment_tel, max_amount_cents=1_000_000,
                                    fraud_latency_ms=[0, 0.5], db_latency_ms=[0, 0.5]))  # fmt: skip
        pb_grpc.add_PaymentServicer_to_server(payment, self.payment_server)
        port = self.payment_server.add_insecure_port("127.0.0.1:0")
        self.payment_server.start()
        self.payment_tel.register(f"127.0.0.1:{port}")
        self.spans = SpanCapture()
        self.order_tel = telemetry.Telemetry(make_config("order"), etcd=etcd, instance_id="order",
                                             span_processors=[self.spans.processor])  # fmt: skip

    async def start_order(self, inventory_timeout_ms: int = 2000) -> pb_grpc.OrderStub:
        assert self.order_tel.discovery is not None
        directory = self.order_tel.discovery.directory
        await wait_until_async(lambda: len(directory.instances("inventory")) == 2
                               and len(directory.instances("payment")) == 1)  # fmt: skip
        servicer = order.Order(make_node(
            "order", self.order_tel, db_latency_ms=[0, 0.5], default_recommendations=["sku-mug"],
            downstream_timeout_ms={"inventory": inventory_timeout_ms, "payment": 2000,
                                   "recommendation": 100, "notification": 100},
        ))  # fmt: skip
        self.order_server = self.order_tel.aio_server()
        pb_grpc.add_OrderServicer_to_server(servicer, self.order_server)
        port = self.order_server.add_insecure_port("127.0.0.1:0")
        await self.order_server.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return pb_grpc.OrderStub(self.channel)

    async def close(self) -> None:
        if hasattr(self, "channel"):
            await self.channel.close()
            await self.order_server.stop(None)
        self.order_tel.shutdown()
        self.payment_server.stop(grace=None).wait(5)
        self.payment_tel.shutdown()


async def place(stub: pb_grpc.OrderStub, lines: list[pb.Item]) -> pb.OrderReply | grpc.StatusCode:
    try:
        reply: pb.OrderReply = await stub.PlaceOrder(pb.PlaceOrderRequest(user="ada", items=lines))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return reply


async def test_orders_refused_at_payment_give_their_units_back_to_the_instance_that_held_them(
    shop: Callable[..., Shop], etcd_endpoint: str, logs: Any
) -> None:
    initial = 2000
    shops = [shop(etcd=etcd_endpoint, instance_id=f"inventory-{n}", stock_per_sku=initial)
             for n in (1, 2)]  # fmt: skip
    for s in shops:
        s.servicer._node.tel.register(f"127.0.0.1:{s.port}")
    backends = Backends(etcd_endpoint)
    try:
        stub = await backends.start_order()
        cheap = items(("sku-mug", 3), ("sku-grinder", 1), ("sku-mug", 2))
        dear = items(("sku-grinder", 40), ("sku-grinder", 40))  # 80 x 129.00 > payment's limit
        results = await asyncio.gather(*(place(stub, dear if n % 3 == 0 else cheap) for n in range(30)))
        placed = [r for r in results if isinstance(r, pb.OrderReply)]
        refused = [r for r in results if not isinstance(r, pb.OrderReply)]
        assert len(placed) == 20 and refused == [grpc.StatusCode.INVALID_ARGUMENT] * 10
        assert all(r.payment_id.startswith("pay_") for r in placed)

        held_total: Counter[str] = Counter()
        for s in shops:
            available, held = s.servicer.books()
            for sku in CATALOG_SKUS:
                assert initial == available[sku] + held[sku], (s.servicer.instance_id, sku)
            held_total.update(held)
        assert +held_total == Counter({"sku-mug": 5 * 20, "sku-grinder": 20})  # only the placed

        # order's line per compensation (inventory logs its own, without holder_answered)
        released = [e for e in logs.matching(event="reservation released") if "holder_answered" in e]
        assert len(released) == 10 and all(e["holder_answered"] for e in released)
        assert {e["instance_id"] for e in released} <= {"inventory-1", "inventory-2"}
        release_spans = [s for s in backends.spans.spans() if s.name.endswith("Inventory/Release")]
        assert len(release_spans) >= 10  # a traced call, each
    finally:
        await backends.close()


async def test_a_reserve_order_gave_up_on_is_released_everywhere_and_takes_nothing(
    shop: Callable[..., Shop], etcd_endpoint: str, logs: Any
) -> None:
    """Reserve outlives order's deadline (slow inventory): its outcome is unknown, so order tells
    every instance to release; the late Reserve then finds the order released and takes nothing."""
    shops = [shop(etcd=etcd_endpoint, instance_id=f"inventory-{n}", db_latency_ms=[300, 300])
             for n in (1, 2)]  # fmt: skip
    for s in shops:
        s.servicer._node.tel.register(f"127.0.0.1:{s.port}")
    backends = Backends(etcd_endpoint)
    try:
        stub = await backends.start_order(inventory_timeout_ms=100)
        result = await place(stub, items(("sku-mug", 7)))
        assert result == grpc.StatusCode.DEADLINE_EXCEEDED
        # The late Reserve runs out its simulated I/O, then is refused: the order was released.
        await logs.wait_for_async(lambda events: any(
            e.get("grpc.method") == "Reserve" and e.get("grpc.code") == "FailedPrecondition"
            for e in events))  # fmt: skip
        for s in shops:
            available, held = s.servicer.books()
            assert available["sku-mug"] == 100 and held["sku-mug"] == 0
        released = [e for e in logs.matching(event="reservation released") if "holder_answered" in e]
        assert len(released) == 1 and released[0]["instance_id"] == ""  # unknown holder: all told
    finally:
        await backends.close()
