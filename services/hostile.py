"""hostile: a corpus of bad and hostile input for the demo shop, and the clients that send it.

What an attacker (or a broken client) can send from outside, through the gateway's HTTP API, and
what a misbehaving peer inside the mesh can send to a gRPC service. Each case is seeded and varied
(distinct users, paths, methods and sizes), so a run also probes that tables and label sets stay
bounded, not only that one request is refused. ``tests/stack/test_hostile_stack.py`` sends a few
hundred against the native stack; ``benchmarks/hostile.py`` ten thousand, with memory, series and
stock figures.

The corpus (``HTTP_CASES``): oversized and out-of-range fields (the 60 KB user, the 20 KB SKU,
int32 overflow, 1e400, floats, booleans), malformed and deeply nested JSON, bodies past the size
limit, an order listing one SKU many times, spoofed baggage (``user=ops``, the VIP key of
inventory's per-user limit) and oversized baggage, malformed ``traceparent`` and ``tracestate``,
bad deadlines, rotating users, paths and HTTP methods, secrets in headers and query strings, and
raw bytes that are not HTTP at all (``RAW_CASES``). gRPC (``grpc_hostile_calls``): methods no
service has, with distinct names, and bytes that are no protobuf message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import orjson

from services.catalog import CATALOG
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

SKUS = tuple(sorted(CATALOG))


@dataclass(frozen=True)
class HttpCase:
    """One request: what to send, and the kind it is (for the report)."""

    kind: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _token(rng: random.Random, size: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choices(alphabet, k=size))


def _order(user: str, items: object, **extra: object) -> bytes:
    # The stdlib encoder: orjson refuses integers past 64 bits, which the corpus sends on purpose.
    return json.dumps({"user": user, "items": items, **extra}).encode()


def _mug(quantity: object = 1) -> dict[str, object]:
    return {"sku": "sku-mug", "quantity": quantity}


# -- HTTP cases: rng -> request ---------------------------------------------------------------------


def oversized_user(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_field", "POST", "/orders",
                    _order(_token(rng, 60_000), [_mug()]))  # fmt: skip


def oversized_sku(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_field", "POST", "/orders",
                    _order("mallory", [{"sku": "sku-" + _token(rng, 20_000)}]))  # fmt: skip


def oversized_currency(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_field", "POST", "/orders",
                    _order("mallory", [_mug()], currency=_token(rng, 5_000)))  # fmt: skip


def too_many_items(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_field", "POST", "/orders",
                    _order("mallory", [_mug()] * rng.randint(21, 2_000)))  # fmt: skip


def bad_quantity(rng: random.Random) -> HttpCase:
    quantity: object = rng.choice([2**31, 2**63, -1, 0, 1.5, "2", True, None, [], {}, 10**30])
    return HttpCase("bad_number", "POST", "/orders", _order("mallory", [_mug(quantity)]))


def huge_number(_rng: random.Random) -> HttpCase:
    raw = b'{"user": "mallory", "items": [{"sku": "sku-mug", "quantity": 1e400}]}'
    return HttpCase("bad_number", "POST", "/orders", raw)


def wrong_types(rng: random.Random) -> HttpCase:
    body: object = rng.choice([
        [], "order", 17, None, {"user": 17, "items": [_mug()]}, {"user": "m", "items": "sku-mug"},
        {"user": "m", "items": [17]}, {"user": "m", "items": [{"sku": 17}]}, {"user": "m"},
        {"user": "m", "items": [_mug()], "currency": 17}, {"user": "", "items": [_mug()]},
    ])  # fmt: skip
    return HttpCase("wrong_type", "POST", "/orders", json.dumps(body).encode())


def malformed_json(rng: random.Random) -> HttpCase:
    body = rng.choice([b"{not json", b'{"user": "m", ', b"\xff\xfe\x00garbage", b"", b"nul\x00l",
                       b'{"user": "\xed\xa0\x80"}', b"[" * 20])  # fmt: skip
    return HttpCase("malformed_json", "POST", "/orders", body)


def deeply_nested(rng: random.Random) -> HttpCase:
    depth = rng.choice([1_000, 30_000])
    return HttpCase("deep_json", "POST", "/orders", b"[" * depth + b"]" * depth)


def oversized_body(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_body", "POST", "/orders",
                    _order("mallory", [_mug()], note=_token(rng, 70_000)))  # fmt: skip


def duplicate_skus(rng: random.Random) -> HttpCase:
    """One SKU on up to 20 lines: checked as a total (a line at a time let stock go negative)."""
    lines = [{"sku": "sku-scale", "quantity": 1000}] * rng.randint(2, 20)
    return HttpCase("duplicate_skus", "POST", "/orders", _order(f"dup-{rng.randrange(50)}", lines))


def spoofed_baggage(rng: random.Random) -> HttpCase:
    """``user=ops`` is inventory's VIP key; the edge drops inbound baggage, so it buys nothing."""
    baggage = rng.choice(["user=ops", "user=ops,group=canary", "group=canary", "user=ops;prop=1"])
    return HttpCase("spoofed_baggage", "GET", f"/stock/{rng.choice(SKUS)}",
                    headers={"baggage": baggage, "x-user": "mallory"})  # fmt: skip


def oversized_baggage(rng: random.Random) -> HttpCase:
    members = ",".join(f"k{n}={_token(rng, 40)}" for n in range(180))
    return HttpCase("oversized_baggage", "GET", f"/stock/{rng.choice(SKUS)}",
                    headers={"baggage": members[:8000]})  # fmt: skip


def bad_traceparent(rng: random.Random) -> HttpCase:
    trace, span = _token(rng, 32, "0123456789abcdef"), _token(rng, 16, "0123456789abcdef")
    value = rng.choice([
        f"ff-{trace}-{span}-01", f"00-{'0' * 32}-{span}-01", f"00-{trace}-{'0' * 16}-01",
        f"00-{trace.upper()}-{span}-01", f"00-{trace}-{span}-01-extra", f"00-{trace}-{span}",
        "00-" + "g" * 32 + f"-{span}-01", f"00-{trace}-{span}-01" * 100, "\t00-x",
    ])  # fmt: skip
    tracestate = ",".join(f"v{n}={_token(rng, 200)}" for n in range(rng.choice([0, 40])))
    headers = {"traceparent": value[:4000]}
    if tracestate:
        headers["tracestate"] = tracestate[:8000]
    return HttpCase("bad_trace_context", "GET", f"/stock/{rng.choice(SKUS)}", headers=headers)


def bad_deadline(rng: random.Random) -> HttpCase:
    timeout = rng.choice(["soon", "-5", "0", "1e309", "nan", "inf", "9" * 40, "1_000", "0x10", "1e3"])
    return HttpCase("bad_deadline", "POST", "/orders", _order("mallory", [_mug()]),
                    {"x-request-timeout-ms": timeout})  # fmt: skip


def rotating_user(rng: random.Random) -> HttpCase:
    """A new user per request: per-user limiter tables must stay bounded."""
    user = f"u{rng.getrandbits(64):x}"[: rng.choice([8, 64])]
    return HttpCase("rotating_user", "GET", f"/stock/{rng.choice(SKUS)}", headers={"x-user": user})


def oversized_user_header(rng: random.Random) -> HttpCase:
    return HttpCase("oversized_field", "GET", f"/stock/{rng.choice(SKUS)}",
                    headers={"x-user": _token(rng, 5_000)})  # fmt: skip


def rotating_path(rng: random.Random) -> HttpCase:
    """Distinct paths: span names and metric labels use route templates, never the raw path."""
    token = _token(rng, 12)
    path = rng.choice([f"/stock/{token}", f"/orders/ord_{token}", f"/{token}/{token}",
                       f"/stock/{_token(rng, 5_000)}", f"/orders/{token}?password={token}",
                       "/%00/..%2f..%2fetc/passwd", f"/stock/sku-mug?token={token}"])  # fmt: skip
    return HttpCase("rotating_path", "GET", path)


def rotating_method(rng: random.Random) -> HttpCase:
    """Unknown HTTP methods: ``_OTHER`` in spans and labels (OpenTelemetry HTTP conventions)."""
    method = rng.choice(["FOO", "PROPFIND", "BREW", "DELETE", "PUT"]) + _token(
        rng, 6, string.ascii_uppercase
    )
    return HttpCase("rotating_method", method, "/orders", _order("mallory", [_mug()]))


def secret_headers(rng: random.Random) -> HttpCase:
    secret = _token(rng, 24)
    headers = {"x-access-token": secret, "api-key": secret, "x-password": secret,
               "authorization": f"Bearer {secret}", "cookie": f"session={secret}"}  # fmt: skip
    return HttpCase("secrets", "GET", f"/stock/sku-mug?api_key={secret}", headers=headers)


def control_characters(rng: random.Random) -> HttpCase:
    user = rng.choice(["m\x00llory", "m\u202eallory", "m\x1b[31mallory", "\U0001f600" * 16])
    return HttpCase("control_characters", "POST", "/orders", _order(user, [_mug()]), {"x-user": "ok"})


HTTP_CASES: tuple[Callable[[random.Random], HttpCase], ...] = (
    oversized_user, oversized_sku, oversized_currency, too_many_items, bad_quantity, huge_number,
    wrong_types, malformed_json, deeply_nested, oversized_body, duplicate_skus, spoofed_baggage,
    oversized_baggage, bad_traceparent, bad_deadline, rotating_user, oversized_user_header,
    rotating_path, rotating_method, secret_headers, control_characters,
)  # fmt: skip
"""Every HTTP case generator; :func:`http_corpus` cycles through them."""

RAW_CASES: tuple[bytes, ...] = (
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4_000_000 + b"\r\n\r\n",
    b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
    b"POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS ClientHello
)
"""Bytes that are not valid HTTP/1.1: answered (400, 413, ...) or closed by the HTTP server."""


def http_corpus(rng: random.Random, count: int) -> Iterator[HttpCase]:
    """``count`` hostile requests, every case in turn, each varied by ``rng``."""
    for index in range(count):
        yield HTTP_CASES[index % len(HTTP_CASES)](rng)


def normal_requests(rng: random.Random, count: int, users: int = 20) -> Iterator[HttpCase]:
    """What the load generator sends: orders (half), stock reads, and look-ups of unknown orders."""
    for _ in range(count):
        user = f"user-{rng.randrange(users):03d}"
        roll = rng.random()
        if roll < 0.5:
            items = [{"sku": sku, "quantity": rng.randint(1, 3)}
                     for sku in rng.sample(SKUS, rng.randint(1, 3))]  # fmt: skip
            yield HttpCase("order", "POST", "/orders", _order(user, items), {"x-user": user})
        elif roll < 0.9:
            yield HttpCase("stock", "GET", f"/stock/{rng.choice(SKUS)}", headers={"x-user": user})
        else:
            yield HttpCase("lookup", "GET", f"/orders/ord_{rng.getrandbits(48):012x}",
                           headers={"x-user": user})  # fmt: skip


# -- sending ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int  # 0: no HTTP answer (the connection was closed)
    json_error: bool  # a JSON object with an "error" string
    body: bytes


class HttpClient:
    """One keep-alive connection to the gateway, reopened after errors and closes."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._connection: http.client.HTTPConnection | None = None

    def send(self, case: HttpCase) -> Answer:
        for attempt in range(2):  # a kept-alive connection the server closed: once more, fresh
            connection = self._connection or http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout
            )
            self._connection = connection
            try:
                connection.request(case.method, case.path, body=case.body, headers=case.headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 0:
                    continue
                return Answer(case.kind, 0, False, b"")
            if response.will_close:
                self.close()
            return Answer(case.kind, response.status, _is_json_error(body), body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _is_json_error(body: bytes) -> bool:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), str)


def send_raw(host: str, port: int, payload: bytes, timeout: float = 5.0) -> int:
    """Write ``payload`` on a fresh connection; the status the server answers, 0 if it closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # it may close while we still write
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        with contextlib.suppress(OSError):
            while len(reply) < 64:
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
    parts = reply.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return 0


# -- gRPC -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrpcCase:
    kind: str
    method: str
    payload: bytes
    metadata: tuple[tuple[str, str], ...] = ()


def grpc_corpus(rng: random.Random, service: str, count: int) -> Iterator[GrpcCase]:
    """Calls a misbehaving peer could make to ``service`` (``demoshop.v1.Inventory``, say): methods
    it lacks, under its name and under invented services, each distinct; bytes that no protobuf
    parser accepts; rotating baggage users; malformed trace headers."""
    real = {
        "demoshop.v1.Order": "PlaceOrder", "demoshop.v1.Inventory": "GetStock",
        "demoshop.v1.Payment": "Charge", "demoshop.v1.Recommendation": "Recommend",
        "demoshop.v1.Notification": "Notify",
    }.get(service, "Missing")  # fmt: skip
    for index in range(count):
        token = _token(rng, 10)
        roll = index % 4
        if roll == 0:
            yield GrpcCase("unknown_method", f"/{service}/M{token}", b"")
        elif roll == 1:
            yield GrpcCase("unknown_method", f"/evil{token}.S/M{token}", b"")
        elif roll == 2:
            yield GrpcCase("bad_protobuf", f"/{service}/{real}", b"\xff" * rng.randint(1, 64))
        else:
            metadata = (("baggage", f"user=u{token}"), ("traceparent", f"00-{token}-zz-01"),
                        ("x-api-key", token))  # fmt: skip
            yield GrpcCase("rotating_baggage", f"/{service}/{real}", b"", metadata)


def send_grpc(channel: grpc.Channel, case: GrpcCase, timeout: float = 5.0) -> grpc.StatusCode:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        case.method, request_serializer=None, response_deserializer=None
    )
    try:
        call(case.payload, timeout=timeout, metadata=case.metadata)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


# -- the books ---------------------------------------------------------------------------------------


def books_orders(rng: random.Random, count: int) -> Iterator[tuple[HttpCase, dict[str, int]]]:
    """Orders that test the books, each with the units it takes if it succeeds: a SKU on several
    lines (one in three), charges payment refuses (over its 1,000,000-cent limit: one in four;
    reserved, then released), and plain ones."""
    for index in range(count):
        user = f"books-{rng.randrange(20):02d}"
        lines: list[tuple[str, int]]
        if index % 4 == 3:  # 2 x 40 grinders at 12,900 cents: refused at payment, released
            lines = [("sku-grinder", 40)] * 2
        elif index % 3 == 0:
            sku = rng.choice(SKUS)
            lines = [(sku, rng.randint(1, 5)) for _ in range(rng.randint(2, 6))]
        else:
            lines = [(sku, rng.randint(1, 5)) for sku in rng.sample(SKUS, rng.randint(1, 3))]
        units: dict[str, int] = {}
        for sku, quantity in lines:
            units[sku] = units.get(sku, 0) + quantity
        items = [{"sku": sku, "quantity": quantity} for sku, quantity in lines]
        yield HttpCase("books", "POST", "/orders", _order(user, items), {"x-user": user}), units


def stock_of(addresses: list[str], timeout: float = 5.0) -> dict[str, int]:
    """Units available per SKU, summed over the inventory instances at ``addresses`` (read one by
    one, as ``ops``: inventory's per-user limit lets that user through)."""
    total = dict.fromkeys(SKUS, 0)
    for address in addresses:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.InventoryStub(channel)
            for sku in SKUS:
                reply = stub.GetStock(pb.GetStockRequest(sku=sku), timeout=timeout,
                                      metadata=(("baggage", "user=ops"),))  # fmt: skip
                total[sku] += reply.available
    return total
