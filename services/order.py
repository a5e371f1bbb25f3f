"""order (grpc.aio): places orders. Reserves stock (inventory): core, its failure fails the order.
Charges (payment): core too, but when payment fails or its breaker is open the charge is deferred
(governance's sync-to-async fallback: queued, sent when payment recovers) and the order is accepted
with ``payment_deferred``, as shops take orders while a payment provider is down. Then,
concurrently, asks recommendation for suggestions (non-core: a default list when it fails) and
notification to tell the user (deferred the same way). Every downstream is reached by service name
through etcd, balanced per call.

Compensation: once stock is reserved, any failure of the order (payment refused, or failed and NOT
deferred; anything raising later) releases the reservation, so refused orders keep no stock. A
deferred charge keeps it: the order is accepted. The two inventory instances keep separate stock,
so the release must reach the instance that reserved: Reserve's reply names it (``instance_id``),
order looks its address up in discovery and calls Release there directly (traced like any call).
When the instance is not found (no etcd, or it left) the balanced channel is tried a few times
until the holder answers; when Reserve's outcome is unknown (deadline passed), every known instance
is told, and Release remembers the order so a late Reserve of it is refused. Release is idempotent,
so telling an instance that holds nothing is harmless. The caller hears the failure after the
release (its books are settled by then). A release that fails is logged, not retried beyond the
bounded attempts: the units stay held (a real shop would expire reservations).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

import telemetry
from services import config, runtime
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_ITEMS = 20
MAX_FIELD = 64  # user, currency, sku: as the gateway checks
GOVERNANCE_KEY = "x-governance"  # trailing metadata telling a fallback from a real answer
RELEASE_ATTEMPTS = 4  # through the balanced channel, when the holder is not found in discovery
_OUTCOME_UNKNOWN = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}  # may have reserved
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
        self._instances: dict[str, pb_grpc.InventoryStub] = {}  # address -> a direct stub
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
        # Kept in the order store and logs: bounded here too, not only at the gateway (any gRPC
        # client can call order directly).
        fields = [("user", request.user), ("currency", request.currency)]
        fields += [(f"items[{i}].sku", item.sku) for i, item in enumerate(request.items)]
        for field, value in fields:
            if len(value) > MAX_FIELD:
                too_long = f"{field}: at most {MAX_FIELD} characters, got {len(value)}"
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, too_long)
        order_id = f"ord_{uuid.uuid4().hex[:12]}"
        currency = request.currency or self._default_currency
        telemetry.add_log_fields(order_id=order_id, user=request.user, items=len(request.items))

        try:
            return await self._place(request, order_id, currency)
        except OrderFailedError as failed:  # aborting sends the status at once: after compensating
            await context.abort(failed.code, failed.details)
            raise  # not reached: abort raised

    async def _place(self, request: pb.PlaceOrderRequest, order_id: str, currency: str) -> pb.OrderReply:
        reserving = self._inventory.Reserve(pb.ReserveRequest(order_id=order_id, items=request.items),
                                            timeout=self._timeout("inventory"))  # fmt: skip
        try:
            reservation: pb.ReserveReply = await reserving
        except (grpc.RpcError, asyncio.CancelledError) as error:
            if isinstance(error, asyncio.CancelledError) or _code(error) in _OUTCOME_UNKNOWN:
                # It may have reserved after we gave up: tell every instance (a no-op where not).
                await self._release(order_id, request.items, instance_id="")
            if isinstance(error, asyncio.CancelledError):
                raise
            raise _failed("inventory", error) from error
        try:
            return await self._after_reserve(request, order_id, currency, reservation)
        except BaseException:  # the order fails, whatever the reason: the units go back
            await self._release(order_id, request.items, instance_id=reservation.instance_id)
            raise

    async def _after_reserve(
        self, request: pb.PlaceOrderRequest, order_id: str, currency: str, reservation: pb.ReserveReply
    ) -> pb.OrderReply:
        charging = self._payment.Charge(
            pb.ChargeRequest(order_id=order_id, user=request.user,
                             amount_cents=reservation.total_cents, currency=currency),
            timeout=self._timeout("payment"),
        )  # fmt: skip
        try:
            charge: pb.ChargeReply = await charging
        except grpc.RpcError as error:
            raise _failed("payment", error) from error
        payment_deferred = await _decision(charging, "deferred")
        if not charge.payment_id and not payment_deferred:
            # A fallback answered without queueing the charge (deferral queue full): not paid.
            raise OrderFailedError(grpc.StatusCode.UNAVAILABLE, "payment: failed, charge not deferred")
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

    async def _release(self, order_id: str, items: Sequence[pb.Item], instance_id: str) -> None:
        """Compensate a reservation: Release on the instance holding it (``instance_id``; "" when
        unknown: every known instance), directly at its address from discovery; through the
        balanced channel (bounded attempts, until the holder answers) when discovery does not know
        it or the direct call fails. Never raises: the order's own failure is what the caller
        hears; a release that fails is logged (the units stay held)."""
        release = pb.ReleaseRequest(order_id=order_id, items=items)
        stubs = self._inventory_stubs(instance_id)
        units, answered, errors = 0, False, list[str]()
        try:
            for stub in stubs:
                reply = await self._release_on(stub, release, errors)
                if reply is not None:
                    units += reply.units
                    answered = answered or reply.released or reply.instance_id == instance_id
            if not answered and (instance_id or not stubs):
                for _ in range(RELEASE_ATTEMPTS):
                    reply = await self._release_on(self._inventory, release, errors)
                    if reply is not None:
                        units += reply.units
                        if reply.released or reply.instance_id == instance_id:
                            answered = True
                            break
        except asyncio.CancelledError:  # cancelled again while compensating: stop here
            errors.append("CANCELLED")
        if instance_id and not answered:
            log.warning("reservation not released", order_id=order_id, instance_id=instance_id,
                        errors=errors)  # fmt: skip
            return
        log.info("reservation released", order_id=order_id, instance_id=instance_id, units=units,
                 holder_answered=answered)  # fmt: skip

    async def _release_on(
        self, stub: pb_grpc.InventoryStub, release: pb.ReleaseRequest, errors: list[str]
    ) -> pb.ReleaseReply | None:
        try:
            reply: pb.ReleaseReply = await stub.Release(release, timeout=self._timeout("inventory"))
        except grpc.RpcError as error:
            errors.append(str(_code(error) or error))
            return None
        return reply

    def _inventory_stubs(self, instance_id: str) -> list[pb_grpc.InventoryStub]:
        """Direct stubs to the inventory instance ``instance_id`` (all of them when ""), found in
        discovery; [] when discovery does not know it."""
        discovery = self._node.tel.discovery
        if discovery is None:
            return []
        found = [i for i in discovery.directory.instances("inventory")
                 if not instance_id or i.id == instance_id]  # fmt: skip
        stubs = []
        for instance in found:
            stub = self._instances.get(instance.address)
            if stub is None:  # one traced channel per address, kept (a handful of instances)
                stub = pb_grpc.InventoryStub(self._node.tel.aio_channel(instance.address))
                self._instances[instance.address] = stub
            stubs.append(stub)
        return stubs

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


class OrderFailedError(Exception):
    """The order fails with ``code``: raised inside, answered (``context.abort``) once the
    reservation is compensated, as aborting sends the status to the caller at once."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


def _failed(service: str, error: grpc.RpcError) -> OrderFailedError:
    """A core call failed: the order fails, with a status that says whose fault it was (the
    caller's request, or a dependency being down)."""
    code = _code(error)
    answer = (
        grpc.StatusCode.UNAVAILABLE
        if code is None
        else _CORE_FAILURES.get(code, grpc.StatusCode.UNAVAILABLE)
    )
    details = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
    return OrderFailedError(answer, f"{service}: {details}")


def _code(error: BaseException) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.aio.AioRpcError) else None


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
