"""order (grpc.aio): places orders. Reserves stock (inventory): core, its failure fails the order.
Charges (payment): core too, but when payment fails or its breaker is open the charge is deferred
(governance's sync-to-async fallback: queued, sent when payment recovers) and the order is accepted
with ``payment_deferred``, as shops take orders while a payment provider is down. Then,
concurrently, asks recommendation for suggestions (non-core: a default list when it fails) and
notification to tell the user (deferred the same way). Every downstream is reached by service name
through etcd, balanced per call.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Iterable
from typing import Any

import grpc

import telemetry
from services import config, runtime
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_ITEMS = 20
GOVERNANCE_KEY = "x-governance"  # trailing metadata telling a fallback from a real answer
_CORE_FAILURES = {  # a downstream status -> what order answers with
    grpc.StatusCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
}

log = telemetry.get_logger("services.order")


class Order(pb_grpc.OrderServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node
        tel = node.tel
        self._inventory = pb_grpc.InventoryStub(tel.aio_channel("inventory"))
        self._payment = pb_grpc.PaymentStub(tel.aio_channel("payment"))
        self._recommendation = pb_grpc.RecommendationStub(tel.aio_channel("recommendation"))
        self._notification = pb_grpc.NotificationStub(tel.aio_channel("notification"))
        self._timeouts = config.require(node.settings, "downstream_timeout_ms", dict)
        self._orders: collections.OrderedDict[str, pb.OrderReply] = collections.OrderedDict()
        self._keep = int(node.settings.get("orders_kept", 10_000))
        self._default_currency = str(node.settings.get("default_currency", "EUR"))

    def _timeout(self, service: str) -> float:
        return float(self._timeouts.get(service, 1000)) / 1000.0

    async def PlaceOrder(  # noqa: N802
        self, request: pb.PlaceOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.OrderReply:
        if not request.user:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user: required")
        if not 0 < len(request.items) <= MAX_ITEMS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"items: 1..{MAX_ITEMS} required")
        order_id = f"ord_{uuid.uuid4().hex[:12]}"
        currency = request.currency or self._default_currency
        telemetry.add_log_fields(order_id=order_id, user=request.user, items=len(request.items))

        reservation = await self._core_call(
            context, "inventory", self._inventory.Reserve(
                pb.ReserveRequest(order_id=order_id, items=request.items),
                timeout=self._timeout("inventory"),
            ),
        )  # fmt: skip
        charging = self._payment.Charge(
            pb.ChargeRequest(order_id=order_id, user=request.user,
                             amount_cents=reservation.total_cents, currency=currency),
            timeout=self._timeout("payment"),
        )  # fmt: skip
        charge = await self._core_call(context, "payment", charging)
        payment_deferred = await _decision(charging, "deferred")
        await self._node.simulated_io_async("db.insert order", "db_latency_ms",
                                            **{"db.system.name": "postgresql"})  # fmt: skip
        (skus, degraded), deferred = await asyncio.gather(
            self._recommend(request), self._notify(request.user, order_id)
        )
        reply = pb.OrderReply(
            order_id=order_id, user=request.user, items=request.items,
            total_cents=reservation.total_cents, currency=currency, payment_id=charge.payment_id,
            recommendations=skus, recommendations_degraded=degraded, notification_deferred=deferred,
            payment_deferred=payment_deferred,
        )  # fmt: skip
        self._remember(reply)
        log.info("order placed", order_id=order_id, total_cents=reply.total_cents,
                 degraded=degraded, deferred=deferred, payment_deferred=payment_deferred)  # fmt: skip
        return reply

    async def GetOrder(  # noqa: N802
        self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.OrderReply:
        if not request.order_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order_id: required")
        await self._node.simulated_io_async("db.select order", "db_latency_ms",
                                            **{"db.system.name": "postgresql"})  # fmt: skip
        found = self._orders.get(request.order_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id!r} not found")
        assert found is not None  # abort raised
        return found

    async def _core_call(
        self, context: grpc.aio.ServicerContext[Any, Any], service: str, call: Any
    ) -> Any:
        """A call the order cannot do without: its failure fails the order, with a status that
        says whose fault it was (the caller's request, or a dependency being down)."""
        try:
            return await call
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
            answer = _CORE_FAILURES.get(code, grpc.StatusCode.UNAVAILABLE)
            details = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
            await context.abort(answer, f"{service}: {details}")

    async def _recommend(self, request: pb.PlaceOrderRequest) -> tuple[list[str], bool]:
        """Suggestions, or the registered default (governance fallback) when the service fails;
        the order never fails for them."""
        call = self._recommendation.Recommend(
            pb.RecommendRequest(user=request.user, skus=[i.sku for i in request.items], limit=3),
            timeout=self._timeout("recommendation"),
        )
        try:
            reply = await call
        except grpc.RpcError:  # no fallback applied (e.g. rules switched off): still non-core
            return list(self._node.settings.get("default_recommendations", [])), True
        return list(reply.skus), await _decision(call, "fallback")

    async def _notify(self, user: str, order_id: str) -> bool:
        """True when the notification was deferred (queued until notification recovers); a
        fallback answer without queueing (deferral off) is not a deferral."""
        call = self._notification.Notify(
            pb.NotifyRequest(user=user, order_id=order_id, channel="email"),
            timeout=self._timeout("notification"),
        )
        try:
            await call
        except grpc.RpcError as error:
            log.warning("notification not sent", order_id=order_id, error=str(error.code()))
            return False
        return await _decision(call, "deferred")

    def _remember(self, reply: pb.OrderReply) -> None:
        self._orders[reply.order_id] = reply
        while len(self._orders) > self._keep:
            self._orders.popitem(last=False)


async def _decision(call: Any, outcome: str) -> bool:
    """Did governance answer ``call`` with ``outcome`` ("fallback", "deferred")? Its trailing
    metadata says so: ``x-governance: <outcome>:<mechanism>``."""
    trailing = await call.trailing_metadata()
    return any(key == GOVERNANCE_KEY and str(value).startswith(f"{outcome}:") for key, value in
               (trailing or ()))  # fmt: skip


async def build(node: runtime.Node) -> runtime.Servicers:
    governance = node.tel.governance
    if governance is not None:
        governance.register_fallback(
            "demoshop.v1.Recommendation/Recommend",
            default=pb.RecommendReply(skus=node.settings.get("default_recommendations", [])),
        )
        governance.register_fallback("demoshop.v1.Notification/Notify",
                                     default=pb.NotifyReply(queued=True))  # fmt: skip
        # A deferred charge has no payment id yet: payment assigns one when the queue sends it.
        governance.register_fallback("demoshop.v1.Payment/Charge", default=pb.ChargeReply())
    servicer = Order(node)

    def add_servicers(server: Any, _node: runtime.Node) -> Iterable[str]:
        pb_grpc.add_OrderServicer_to_server(servicer, server)
        return ["demoshop.v1.Order"]

    return add_servicers


if __name__ == "__main__":
    runtime.serve_aio("order", build)
