"""Small helpers shared by the test modules."""

from __future__ import annotations

from typing import Any, cast

import grpc
import orjson
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.discovery.etcd import EtcdError, KeyValue, PrefixRead
from telemetry.testing._poll import poll, poll_async


def make_config(name: str, **overrides: Any) -> telemetry.TelemetryConfig:
    """A config for in-process test services: no metrics port, spans only to the capture."""
    settings: dict[str, Any] = {"metrics_port": None, "traces_exporter": "none"}
    settings.update(overrides)
    return telemetry.TelemetryConfig(service_name=name, **settings)


def trailers(error: grpc.RpcError) -> tuple[tuple[str, str | bytes], ...]:
    """A failed sync call's trailing metadata. (types-grpcio types an RpcError's as _Metadatum
    objects; grpcio's are (key, value) named tuples, as a Call's.)"""
    return cast(tuple[tuple[str, str | bytes], ...], error.trailing_metadata() or ())


def metric_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def wait_until(condition: Any, timeout: float = 10.0, message: str = "condition") -> None:
    """Poll ``condition()`` until true; fail with ``message`` after ``timeout`` seconds."""
    poll(condition, bool, timeout, message)


async def wait_until_async(condition: Any, timeout: float = 10.0, message: str = "condition") -> None:
    """:func:`wait_until` without blocking the event loop (which may run the server awaited)."""
    await poll_async(condition, bool, timeout, message)


async def run_asgi(
    app: Any, path: str, headers: dict[str, str] | None = None, query: bytes = b"", method: str = "GET"
) -> tuple[int, Any]:
    """One request through an ASGI ``app`` in process: (status, the JSON body or None)."""
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "scheme": "http",
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
             "client": ("10.0.0.9", 5555), "server": ("127.0.0.1", 8080)}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), orjson.loads(body) if body else None


class FakeEtcd:
    """What LiveRules uses of an EtcdClient outside its watcher and keepers, for pure tests of
    its parsing: ``put`` (the status) and ``get_prefix``."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def put(self, key: str, value: str | bytes, lease: int = 0) -> int:
        self.values[key] = value.encode() if isinstance(value, str) else value
        return len(self.values)

    def get_prefix(self, prefix: str) -> PrefixRead:
        items = [KeyValue(k, v, 1) for k, v in sorted(self.values.items()) if k.startswith(prefix)]
        return PrefixRead(items, 1, 1)


def etcd_write_succeeds(write: Any) -> bool:
    """Whether ``write()`` (an etcd write) went through: right after etcd restarts, the client's
    own channel may still be reconnecting, so a test retries the write itself under a deadline."""
    try:
        write()
    except EtcdError:
        return False
    return True
