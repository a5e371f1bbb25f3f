"""The access line written directly as JSON is the line the general path renders, byte for byte."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from telemetry.logging.access import AccessLog
from telemetry.logging.pipeline import PIPELINE
from telemetry.logging.render import iso_time, render_json
from telemetry.rpc.call import CallState, MethodInfo, RpcKind, Side


def _finished(log: AccessLog, kind: RpcKind = RpcKind.UNARY, **slots: Any) -> Any:
    """The deferred event the access log queues for a call finished with ``slots``."""
    info = MethodInfo("/shop.Orders/Place", kind, log.side)
    log.prepare(info)
    state = CallState(info, 0.0, (("user-agent", "x"), ("authorization", "secret")), "ipv4:10.0.0.1:5")
    state.target = "orders:50051"
    state.duration = 0.0123456
    state.span = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))
    for name, value in slots.items():
        setattr(state, name, value)
    queued: list[Any] = []
    original, PIPELINE.emit_later = PIPELINE.emit_later, queued.append
    try:
        log.on_finish(state)
    finally:
        PIPELINE.emit_later = original
    assert len(queued) == 1
    return queued[0]


@pytest.fixture
def sensitive() -> Iterator[None]:
    saved = PIPELINE.sensitive
    yield
    PIPELINE.sensitive = saved


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_the_usual_line_is_written_directly_and_equals_the_general_path(side: Side) -> None:
    done = _finished(AccessLog("shop", side))
    direct = done.json_line()
    assert direct is not None
    assert direct == render_json(PIPELINE.redact(done.event()))
    line = json.loads(direct)
    assert line["trace_id"] == f"{0xABC:032x}" and line["span_id"] == f"{0xDEF:016x}"
    assert line["peer.address"] == ("ipv4:10.0.0.1:5" if side is Side.SERVER else "orders:50051")
    assert line["grpc.time_ms"] == 12.346 and line["grpc.method"] == "Place"


def test_a_call_without_a_span_has_no_ids() -> None:
    done = _finished(AccessLog("shop", Side.SERVER), span=None)
    assert done.json_line() == render_json(done.event())
    assert "trace_id" not in json.loads(done.json_line())


def test_a_failed_call_at_warning_level_is_still_direct() -> None:
    done = _finished(AccessLog("shop", Side.SERVER), code=grpc.StatusCode.UNAVAILABLE)
    assert done.json_line() == render_json(done.event())
    assert json.loads(done.json_line())["level"] == "warning"


@pytest.mark.parametrize(
    ("log_options", "slots", "kind"),
    [
        ({}, {"code": grpc.StatusCode.NOT_FOUND, "details": "no such order"}, RpcKind.UNARY),
        ({}, {"fields": {"order_id": "o-1"}}, RpcKind.UNARY),
        ({}, {"exception": ValueError("boom")}, RpcKind.UNARY),
        ({}, {}, RpcKind.SERVER_STREAM),
        ({"log_metadata": True, "sensitive_keys": ("authorization",)}, {}, RpcKind.UNARY),
        ({"log_payloads": True}, {"request": "req", "response": "resp"}, RpcKind.UNARY),
    ],
    ids=["error-details", "handler-fields", "exception", "stream", "metadata", "payloads"],
)
def test_anything_unusual_takes_the_general_path(
    log_options: dict[str, Any], slots: dict[str, Any], kind: RpcKind
) -> None:
    done = _finished(AccessLog("shop", Side.SERVER, **log_options), kind, **slots)
    assert done.json_line() is None
    event = done.event()
    assert event["grpc.method"] == "Place"
    if "log_metadata" in log_options:
        assert event["grpc.metadata"]["authorization"] == "[REDACTED]"


def test_a_sensitive_line_key_takes_the_general_path_and_is_redacted(sensitive: None) -> None:
    PIPELINE.sensitive = frozenset({"peer.address"})
    done = _finished(AccessLog("shop", Side.SERVER))
    assert done.json_line() is None
    assert PIPELINE.redact(done.event())["peer.address"] == "[REDACTED]"


@pytest.mark.parametrize(
    "ts",
    [0.0, 1.5, 1_795_000_000.0, 1_795_000_000.123, 1_795_000_000.9994, 1_795_000_000.9999996, 59.5],
)
def test_iso_time_matches_datetime(ts: float) -> None:
    expected = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat(timespec="milliseconds")
    assert iso_time(ts) == expected
    assert iso_time(ts + 1) != expected  # the cached second moves on


def test_durations_render_as_orjson_renders_them() -> None:
    import random

    import orjson

    rng = random.Random(7)
    values = [0.0, 0.001, 0.5, 1.0, 12.3456, 999.999, 86_400_000.0]
    values += [rng.uniform(0, 10 ** rng.randint(-3, 7)) for _ in range(20_000)]
    for seconds in values:
        ms = round(seconds * 1000.0, 3)
        assert repr(ms) == orjson.dumps(ms).decode(), ms
