"""Inbound values at a trust boundary: an HTTP entry point drops the caller's baggage unless
allowed, a gRPC server keeps what its configuration allows (W3C Baggage: untrusted from outside),
and an unknown HTTP method cannot mint span names or metric labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from helpers import make_config, run_asgi
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.config import ConfigError, TelemetryConfig
from telemetry.testing import SpanCapture
from telemetry.tracing.propagation import W3CPropagation

HOSTILE = {"baggage": "user=ops,group=canary,tenant=acme"}


@pytest.fixture
def tel() -> Iterator[telemetry.Telemetry]:
    handle = telemetry.Telemetry(make_config("web"), registry=CollectorRegistry())
    yield handle
    handle.shutdown()


async def seen_baggage(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the baggage the app (and the calls it makes) would see."""
    payload = orjson.dumps(dict(baggage.get_all()))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


async def test_an_http_entry_point_drops_the_callers_baggage(tel: telemetry.Telemetry) -> None:
    status, seen = await run_asgi(tel.asgi(seen_baggage), "/x", HOSTILE)
    assert status == 200
    assert seen == {}  # "user=ops" would have been a VIP bypass, "group=canary" a routing choice


async def test_an_http_entry_point_keeps_only_allowed_keys(tel: telemetry.Telemetry) -> None:
    _, seen = await run_asgi(tel.asgi(seen_baggage, trusted_baggage=("tenant",)), "/x", HOSTILE)
    assert seen == {"tenant": "acme"}
    _, everything = await run_asgi(tel.asgi(seen_baggage, trusted_baggage=None), "/x", HOSTILE)
    assert everything == {"user": "ops", "group": "canary", "tenant": "acme"}


def test_a_grpc_server_keeps_the_configured_keys() -> None:
    metadata = [("baggage", HOSTILE["baggage"])]
    _, kept = W3CPropagation(inbound_baggage=("tenant",)).extract(metadata)
    assert dict(baggage.get_all(kept)) == {"tenant": "acme"}
    _, none = W3CPropagation(inbound_baggage=()).extract(metadata)
    assert dict(baggage.get_all(none)) == {}
    _, every = W3CPropagation().extract(metadata)
    assert dict(baggage.get_all(every)) == {"user": "ops", "group": "canary", "tenant": "acme"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("*", None), ("none", ()), ("tenant, region", ("tenant", "region"))],
)
def test_the_inbound_baggage_variable(value: str, expected: tuple[str, ...] | None) -> None:
    config = TelemetryConfig.from_env({"TELEMETRY_INBOUND_BAGGAGE": value}, service_name="s")
    assert config.inbound_baggage == expected


def test_a_bad_inbound_baggage_setting_names_the_field() -> None:
    with pytest.raises(ConfigError, match="inbound_baggage"):
        TelemetryConfig(service_name="s", inbound_baggage=["user"])  # type: ignore[arg-type]


async def test_an_unknown_http_method_is_other_in_names_and_labels() -> None:
    spans, registry = SpanCapture(), CollectorRegistry()
    handle = telemetry.Telemetry(
        make_config("web"), registry=registry, span_processors=[spans.processor]
    )
    try:
        status, _ = await run_asgi(handle.asgi(seen_baggage), "/x", method="X" * 1000)
        assert status == 200
        (span,) = spans.wait_for(lambda found: len(found) == 1)
        assert span.name == "HTTP /x"
        attributes = dict(span.attributes or {})
        assert attributes["http.request.method"] == "_OTHER"
        assert attributes["http.request.method_original"] == "X" * 256
        methods = {s.labels["http_request_method"] for m in registry.collect() for s in m.samples
                   if "http_request_method" in s.labels}  # fmt: skip
        assert methods == {"_OTHER"}
    finally:
        handle.shutdown()


async def test_baggage_nobody_keeps_is_not_even_parsed(
    tel: telemetry.Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[object] = []
    original = W3CBaggagePropagator.extract

    def counting(self: W3CBaggagePropagator, carrier: Any, *args: Any, **kwargs: Any) -> Any:
        if "baggage" in carrier:  # a header to parse reached the SDK's parser
            parsed.append(carrier)
        return original(self, carrier, *args, **kwargs)

    monkeypatch.setattr(W3CBaggagePropagator, "extract", counting)
    await run_asgi(tel.asgi(seen_baggage), "/x", {"baggage": "k=" + "v" * 9000})
    assert parsed == []  # dropped before the SDK's parser (8 KB of it, from anyone)
    await run_asgi(tel.asgi(seen_baggage, trusted_baggage=("k",)), "/x", HOSTILE)
    assert len(parsed) == 1
