"""payment (sync gRPC): charges an order. Core: when it fails, the order fails (and order's
circuit breaker on payment opens, so a broken payment service is not hammered)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import grpc

import telemetry
from services import runtime
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

CURRENCIES = frozenset({"EUR", "USD", "GBP", "JPY"})


class Payment(pb_grpc.PaymentServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node
        self._limit = int(node.settings.get("max_amount_cents", 1_000_000))

    def Charge(self, request: pb.ChargeRequest, context: Any) -> pb.ChargeReply:  # noqa: N802
        if not request.order_id or not request.user:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "order_id and user: required")
        if request.currency not in CURRENCIES:
            allowed = ", ".join(sorted(CURRENCIES))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"currency: one of {allowed}, got {request.currency!r}")  # fmt: skip
        if not 0 < request.amount_cents <= self._limit:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"amount_cents: must be 1..{self._limit}")
        telemetry.add_log_fields(order_id=request.order_id, amount_cents=request.amount_cents)
        self._node.simulated_io("fraud.score", "fraud_latency_ms", **{"fraud.model": "v3"})
        self._node.simulated_io("db.insert payment", "db_latency_ms", **{"db.system.name": "postgresql"})
        return pb.ChargeReply(payment_id=f"pay_{uuid.uuid4().hex[:12]}")


def add_servicers(server: Any, node: runtime.Node) -> Iterable[str]:
    pb_grpc.add_PaymentServicer_to_server(Payment(node), server)
    return ["demoshop.v1.Payment"]


if __name__ == "__main__":
    runtime.serve("payment", add_servicers)
