"""The inventory service: a sync gRPC server built with the telemetry package."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

import grpc
import shop_pb2
import shop_pb2_grpc

import telemetry

log = telemetry.get_logger(__name__)


class Inventory(shop_pb2_grpc.InventoryServicer):
    def __init__(self, tel: telemetry.Telemetry) -> None:
        self._tracer = tel.tracer
        self._stock: dict[str, int] = {}
        self._lock = threading.Lock()

    def Reserve(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated name
        if request.quantity <= 0 or not request.sku:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku and a positive quantity are required")
        telemetry.add_log_fields(sku=request.sku, quantity=request.quantity)
        with self._tracer.start_as_current_span("db.select stock") as span:
            span.set_attribute("db.system.name", "in-memory")
            time.sleep(random.uniform(0.001, 0.004))  # a simulated lookup
            with self._lock:
                left = self._stock.setdefault(request.sku, 1000) - request.quantity
                if left < 0:
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "out of stock")
                self._stock[request.sku] = left
        log.info("reserved", sku=request.sku, left=left)
        return shop_pb2.ReserveReply(remaining_stock=left)


def main() -> None:
    tel = telemetry.init(service_name="inventory")
    server = tel.server()
    shop_pb2_grpc.add_InventoryServicer_to_server(Inventory(tel), server)
    server.add_insecure_port(os.environ.get("INVENTORY_ADDRESS", "127.0.0.1:50061"))
    server.start()
    log.info("inventory serving", address=os.environ.get("INVENTORY_ADDRESS", "127.0.0.1:50061"))
    # SIGTERM/SIGINT: stop taking calls, let in-flight ones finish, then flush spans and logs.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.stop(grace=5))
    server.wait_for_termination()
    tel.shutdown()


if __name__ == "__main__":
    main()
