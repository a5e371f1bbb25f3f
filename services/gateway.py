"""gateway: the shop's HTTP API (an ASGI app served by uvicorn) in front of the gRPC services.

    POST /orders          {"user": "ada", "items": [{"sku": "sku-mug", "quantity": 2}]} -> 201
    GET  /orders/{id}     -> 200, 404
    GET  /stock/{sku}     -> 200, 404 (header x-user: who asks; rate limited per user)
    GET  /healthz         -> 200

Every request is traced from the caller's ``traceparent`` (a new trace when there is none or it is
malformed); ``x-request-timeout-ms`` becomes the deadline of the whole gRPC chain; the user travels
as W3C baggage (``user``) so any service can limit or route per user; gRPC status codes map to HTTP
statuses as grpc-gateway maps them. Invalid requests get 400 with a JSON error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import orjson
import uvicorn
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

import telemetry
from services import config, runtime
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_BODY = 64 * 1024
MAX_NAME = 64  # user, sku, order id
MAX_CURRENCY = 8
MAX_ITEMS = 20  # as order checks
MAX_QUANTITY = 1000

# grpc-gateway's mapping (runtime/errors.go HTTPStatusFromCode).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class BadRequestError(Exception):
    """The request is malformed; the message says which field (answered 400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def route_of(path: str) -> str:
    """The route template of a path: low-cardinality names for spans and metric labels."""
    parts = path.rstrip("/").split("/")
    if len(parts) == 3 and parts[1] in ("orders", "stock"):
        return f"/{parts[1]}/{{{'id' if parts[1] == 'orders' else 'sku'}}}"
    return path if path in ("/orders", "/healthz") else "other"


class Gateway:
    def __init__(self, tel: telemetry.Telemetry, settings: dict[str, Any]) -> None:
        self._order = pb_grpc.OrderStub(tel.aio_channel("order"))
        self._inventory = pb_grpc.InventoryStub(tel.aio_channel("inventory"))
        self._timeout = float(config.require(settings, "default_timeout_ms", int)) / 1000.0

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = headers.get("x-user", "")
        token = otel_context.attach(baggage.set_baggage("user", user)) if user else None
        try:
            status, body = await self._dispatch(method, path, receive, user)
        except BadRequestError as bad:
            status, body = bad.status, {"error": str(bad)}
        except grpc.aio.AioRpcError as error:
            status = HTTP_STATUS.get(error.code(), 500)
            body = {"error": error.details() or error.code().name, "grpc_code": error.code().name}
        finally:
            if token is not None:
                otel_context.detach(token)
        if status >= 400 and isinstance(body, dict):  # what a user quotes when reporting a failure
            body["trace_id"] = format(trace.get_current_span().get_span_context().trace_id, "032x")
        await _respond(send, status, body)

    async def _dispatch(self, method: str, path: str, receive: Receive, user: str) -> tuple[int, Any]:
        parts = path.split("/")
        if path == "/healthz":
            return 200, {"status": "ok"}
        _bounded("x-user", user, MAX_NAME)
        if path == "/orders":
            _allow(method, "POST")
            return 201, _order_json(await self._place(await _read_json(receive)))
        if len(parts) == 3 and parts[1] == "orders":
            _allow(method, "GET")
            _bounded("order_id", parts[2], MAX_NAME)
            reply = await self._order.GetOrder(pb.GetOrderRequest(order_id=parts[2]),
                                               timeout=self._timeout)  # fmt: skip
            return 200, _order_json(reply)
        if len(parts) == 3 and parts[1] == "stock":
            _allow(method, "GET")
            _bounded("sku", parts[2], MAX_NAME)
            stock = await self._inventory.GetStock(pb.GetStockRequest(sku=parts[2]),
                                                   timeout=self._timeout)  # fmt: skip
            return 200, {"sku": stock.sku, "available": stock.available,
                         "price_cents": stock.price_cents}  # fmt: skip
        raise BadRequestError(f"no route for {path}", status=404)

    async def _place(self, body: Any) -> pb.OrderReply:
        request = parse_order(body)
        reply: pb.OrderReply = await self._order.PlaceOrder(request, timeout=self._timeout)
        return reply


def parse_order(body: Any) -> pb.PlaceOrderRequest:
    """The PlaceOrder request a ``POST /orders`` JSON body asks for; :class:`BadRequestError`
    naming the first bad field otherwise (``user``, ``items``, ``items[2].quantity`` ...)."""
    if not isinstance(body, dict):
        raise BadRequestError("body: expected a JSON object")
    user, items, currency = body.get("user"), body.get("items"), body.get("currency", "")
    if not isinstance(user, str) or not user:
        raise BadRequestError("user: a non-empty string is required")
    _bounded("user", user, MAX_NAME)
    if not isinstance(items, list) or not items:
        raise BadRequestError("items: a non-empty list is required")
    if len(items) > MAX_ITEMS:
        raise BadRequestError(f"items: at most {MAX_ITEMS} lines, got {len(items)}")
    if not isinstance(currency, str):
        raise BadRequestError("currency: expected a string")
    _bounded("currency", currency, MAX_CURRENCY)
    parsed = []
    for index, item in enumerate(items):
        sku = item.get("sku") if isinstance(item, dict) else None
        quantity = item.get("quantity", 1) if isinstance(item, dict) else None
        if not isinstance(sku, str) or not sku:
            raise BadRequestError(f"items[{index}].sku: a non-empty string is required")
        _bounded(f"items[{index}].sku", sku, MAX_NAME)
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise BadRequestError(f"items[{index}].quantity: an integer is required")
        if not 1 <= quantity <= MAX_QUANTITY:  # the proto's int32 would overflow: a 500 before
            shown = quantity if abs(quantity) < 10**18 else f"an integer of {quantity.bit_length()} bits"
            raise BadRequestError(f"items[{index}].quantity: must be 1..{MAX_QUANTITY}, got {shown}")
        parsed.append(pb.Item(sku=sku, quantity=quantity))
    return pb.PlaceOrderRequest(user=user, items=parsed, currency=currency)


def _bounded(field: str, value: str, limit: int) -> None:
    """Values from outside are size-checked here, at the edge: services keep them (order's store,
    logs, error messages), so an unbounded field is memory anyone can spend."""
    if len(value) > limit:
        raise BadRequestError(f"{field}: at most {limit} characters, got {len(value)}")
    try:  # protobuf strings are UTF-8: a lone surrogate would fail in the stub, as a 500
        value.encode()
    except UnicodeEncodeError:
        raise BadRequestError(f"{field}: not valid Unicode text (a lone surrogate)") from None


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise BadRequestError(f"method {method} not allowed, use {allowed}", status=405)


async def _read_json(receive: Receive) -> Any:
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequestError(f"body: larger than {MAX_BODY} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"body: invalid JSON ({exc})") from None


def _order_json(reply: pb.OrderReply) -> dict[str, Any]:
    return {
        "order_id": reply.order_id,
        "user": reply.user,
        "items": [{"sku": i.sku, "quantity": i.quantity} for i in reply.items],
        "total_cents": reply.total_cents,
        "currency": reply.currency,
        "payment_id": reply.payment_id,
        "recommendations": list(reply.recommendations),
        "recommendations_degraded": reply.recommendations_degraded,
        "notification_deferred": reply.notification_deferred,
        "payment_deferred": reply.payment_deferred,
    }


async def _respond(send: Send, status: int, body: Any) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def main() -> None:
    settings = config.load("gateway")
    node = runtime.Node("gateway", settings)
    app = node.tel.asgi(Gateway(node.tel, settings), route=route_of)
    host, _, port = node.listen.rpartition(":")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host.strip("[]"),
            port=int(port),
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())  # uvicorn handles SIGTERM/SIGINT itself
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        node.register(int(port), [])  # HTTP: no gRPC service
        runtime.log.info("serving", service="gateway", listen=node.listen,
                         metrics=node.tel.metrics_url)  # fmt: skip
    await serving
    await asyncio.to_thread(node.tel.shutdown)  # deregisters first, then flushes


if __name__ == "__main__":
    asyncio.run(main())
