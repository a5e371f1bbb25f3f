"""notification (sync gRPC): tells the user their order is placed. When it fails, order defers the
call into a bounded queue that drains once notification recovers (nothing accepted is lost)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

import telemetry
from services import runtime
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

CHANNELS = frozenset({"email", "sms", "push"})


class Notification(pb_grpc.NotificationServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node

    def Notify(self, request: pb.NotifyRequest, context: Any) -> pb.NotifyReply:  # noqa: N802
        if not request.user or not request.order_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user and order_id: required")
        if request.channel not in CHANNELS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"channel: one of {sorted(CHANNELS)}, got {request.channel!r}")  # fmt: skip
        telemetry.add_log_fields(order_id=request.order_id, channel=request.channel)
        self._node.simulated_io("queue.publish notification", "queue_latency_ms",
                                **{"messaging.system": "kafka"})  # fmt: skip
        return pb.NotifyReply(queued=True)


def add_servicers(server: Any, node: runtime.Node) -> Iterable[str]:
    pb_grpc.add_NotificationServicer_to_server(Notification(node), server)
    return ["demoshop.v1.Notification"]


if __name__ == "__main__":
    runtime.serve("notification", add_servicers)
