"""The log record encoding, decoded by the official ``opentelemetry-proto`` classes, and the
pipeline's guards: hostile field values bounded, bad ids dropped, the exporter's own warnings never
exported, and the logs settings read from the standard variables."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry.proto.logs.v1 import logs_pb2

from telemetry.config import ConfigError, TelemetryConfig
from telemetry.logging.otlp_logs import (
    MAX_ATTRIBUTES,
    MAX_VALUE_CHARS,
    LogExportPipeline,
    encode_log_record,
)
from telemetry.testing.otlp_logs_received import decode_logs
from telemetry.tracing.otlp_pipeline import EXPORT_LOGGER
from telemetry.tracing.setup import build_transport, otlp_http_url

TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def record(event: dict[str, Any], observed: int = 1_700_000_000_000_000_001) -> Any:
    return logs_pb2.LogRecord.FromString(encode_log_record(event, observed))


def test_an_event_becomes_a_log_record_of_the_data_model() -> None:
    found = record({"timestamp": 1_700_000_000.25, "level": "error", "event": "payment failed",
                    "trace_id": TRACE, "span_id": SPAN, "order_id": "o-1", "attempt": 2,
                    "ratio": 0.5, "final": True, "items": ["a", "b"]})  # fmt: skip
    assert found.time_unix_nano == 1_700_000_000_250_000_000
    assert found.observed_time_unix_nano == 1_700_000_000_000_000_001
    assert (found.severity_number, found.severity_text) == (17, "ERROR")
    assert found.body.string_value == "payment failed"
    assert (found.trace_id.hex(), found.span_id.hex()) == (TRACE, SPAN)
    attributes = {kv.key: kv.value for kv in found.attributes}
    assert attributes["order_id"].string_value == "o-1" and attributes["attempt"].int_value == 2
    assert attributes["ratio"].double_value == 0.5 and attributes["final"].bool_value is True
    assert attributes["items"].string_value == '["a","b"]'  # other values as JSON text
    assert set(attributes) == {"order_id", "attempt", "ratio", "final", "items"}


@pytest.mark.parametrize(
    ("level", "number", "text"),
    [("debug", 5, "DEBUG"), ("info", 9, "INFO"), ("warning", 13, "WARN"), ("critical", 21, "FATAL")],
)
def test_levels_map_to_the_data_models_severity(level: str, number: int, text: str) -> None:
    found = record({"level": level, "event": "x"})
    assert (found.severity_number, found.severity_text) == (number, text)


def test_hostile_values_are_bounded_and_bad_ids_dropped() -> None:
    event: dict[str, Any] = {f"k{i}": i for i in range(MAX_ATTRIBUTES + 40)}
    event.update(event="x" * (MAX_VALUE_CHARS * 3), level="nonsense", trace_id="zz" * 16,
                 span_id=SPAN, timestamp=math.inf, huge=10**40)  # fmt: skip
    found = record(event, observed=5)
    assert len(found.attributes) == MAX_ATTRIBUTES
    assert found.dropped_attributes_count == len(event) - 5 - MAX_ATTRIBUTES  # 5 record fields
    assert len(found.body.string_value) == MAX_VALUE_CHARS + 3
    assert found.severity_number == 0 and found.severity_text == ""
    assert found.trace_id == b"" and found.span_id == b""  # no span id without a trace id
    assert found.time_unix_nano == 5  # not a usable time: the observed time
    zero = record({"trace_id": "0" * 32, "span_id": "0" * 16, "timestamp": -1.0})
    assert zero.trace_id == b"" and zero.time_unix_nano == 1_700_000_000_000_000_001


class _Capture:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def send(self, payload: bytes, timeout: float) -> None:
        self.payloads.append(payload)

    def close(self) -> None:
        pass


def test_one_scope_per_logger_under_the_process_resource_and_no_export_of_its_own_warnings() -> None:
    transport = _Capture()
    pipeline = LogExportPipeline(transport, {"service.name": "svc"}, schedule_delay=0.01)
    pipeline.add_event({"event": "a", "logger": "shop.order"})
    pipeline.add_event({"event": "b"})
    pipeline.add_event({"event": "span export failed", "logger": EXPORT_LOGGER})
    pipeline.add_event({"event": "c", "logger": "shop.order"})
    assert pipeline.force_flush(5.0)
    pipeline.shutdown(1.0)
    logs = [log for payload in transport.payloads for log in decode_logs(payload)]
    assert sorted((log.scope, log.body) for log in logs) == [
        ("shop.order", "a"), ("shop.order", "c"), ("telemetry", "b"),
    ]  # fmt: skip
    assert {log.resource["service.name"] for log in logs} == {"svc"}
    assert pipeline.exported == 3


def test_the_logs_settings_come_from_the_standard_variables() -> None:
    env = {"OTEL_LOGS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318/logs"}
    config = TelemetryConfig.from_env(env, service_name="s", otlp_protocol="http/protobuf")
    assert (config.logs_exporter, config.otlp_logs_endpoint) == ("otlp", "http://c:4318/logs")
    assert TelemetryConfig.from_env({}, service_name="s").logs_exporter == "none"
    with pytest.raises(ConfigError, match="OTEL_LOGS_EXPORTER"):
        TelemetryConfig.from_env({"OTEL_LOGS_EXPORTER": "loki"}, service_name="s")
    with pytest.raises(ConfigError, match="otlp_logs_endpoint"):
        TelemetryConfig(service_name="s", otlp_logs_endpoint="c:4318")
    assert otlp_http_url("http://h:4318/prefix/", signal="logs") == "http://h:4318/prefix/v1/logs"
    assert build_transport(TelemetryConfig(service_name="s"), "logs") is None
