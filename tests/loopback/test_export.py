"""Spans leave through the real OTLP exporters (gRPC and HTTP) and arrive at the test receiver; a dead
collector fails no RPC; ``init()`` reads the standard environment variables; shutdown flushes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import echo_pb2_grpc
import grpc
import pytest
from calls import INCOMING, TRACE_ID, call_sync, requests_for
from helpers import make_config, metric_value

import telemetry
from telemetry.testing import OtlpReceiver, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_spans_reach_receiver_through_real_exporter(protocol: str, sync_service: Any) -> None:
    with OtlpReceiver() as receiver:
        endpoint = (
            receiver.grpc_endpoint if protocol == "grpc" else f"http://127.0.0.1:{receiver.http_port}"
        )
        b = sync_service(
            "b",
            traces_exporter="otlp",
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,
            span_schedule_delay=0.05,
        )
        a = sync_service(
            "a",
            traces_exporter="otlp",
            otlp_endpoint=endpoint,
            otlp_protocol=protocol,
            span_schedule_delay=0.05,
        )
        with grpc.insecure_channel(a.target) as channel:
            call_sync(
                echo_pb2_grpc.EchoStub(channel),
                "unary",
                requests_for("unary", [b.target]),
                metadata=INCOMING,
                timeout=10,
            )
        spans = receiver.wait_for(lambda ss: len(ss) >= 3)
    assert {s.trace_id for s in spans} == {TRACE_ID}
    assert sorted((s.service_name, s.kind) for s in spans) == [
        ("a", "CLIENT"),
        ("a", "SERVER"),
        ("b", "SERVER"),
    ]
    assert all(s.name == "telemetry.test.Echo/Unary" for s in spans)


def test_dead_collector_fails_no_rpc_and_shutdown_is_bounded(sync_service: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    a = sync_service(
        "a",
        traces_exporter="otlp",
        otlp_endpoint=dead,
        export_timeout=1.0,
        span_schedule_delay=0.05,
    )
    with grpc.insecure_channel(a.target) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        for _ in range(50):
            assert call_sync(stub, "unary", requests_for("unary", []), timeout=5)
    assert a.tel.tracing is not None and a.tel.tracing.pipeline is not None
    assert a.tel.tracing.pipeline.force_flush(10)
    assert metric_value(a.registry, "telemetry_spans_export_failed_total") >= 50
    started = time.monotonic()
    a.tel.shutdown(timeout=3.0)
    assert time.monotonic() - started < 10  # bounded by the timeout, never hangs on the collector


def test_force_flush_and_idempotent_shutdown() -> None:
    with OtlpReceiver() as receiver:
        tel = telemetry.Telemetry(
            make_config("x", traces_exporter="otlp", otlp_endpoint=receiver.grpc_endpoint)
        )
        tel.tracer.start_span("work").end()
        assert tel.force_flush(5)
        assert [s.name for s in receiver.spans] == ["work"]
        tel.shutdown()
        tel.shutdown()  # idempotent


SCRIPT = textwrap.dedent(
    """
    import telemetry
    tel = telemetry.init()
    assert telemetry.current() is tel
    print("SERVICE", tel.config.service_name, tel.config.sampler, flush=True)
    tracer = tel.tracer
    with tracer.start_as_current_span("from-env"):
        telemetry.get_logger("script").info("inside", answer=42)
    # no shutdown(): init() registered it at exit, which must flush the span
    """
)


def run_script(env: dict[str, str], script: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env)
    full_env.setdefault("TELEMETRY_METRICS_PORT", "none")
    return subprocess.run(
        [sys.executable, "-c", script],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_init_reads_standard_environment_and_flushes_at_exit() -> None:
    with OtlpReceiver() as receiver:
        result = run_script(
            {
                "OTEL_SERVICE_NAME": "env-service",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,team=core",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.http_port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "1.0",
                "OTEL_PROPAGATORS": "tracecontext,baggage",
            }
        )
        assert result.returncode == 0, result.stderr
        assert "SERVICE env-service parentbased_traceidratio" in result.stdout
        (span,) = receiver.wait_for(lambda ss: len(ss) == 1)
    assert span.name == "from-env" and span.service_name == "env-service"
    line = next(ln for ln in result.stdout.splitlines() if '"inside"' in ln)
    assert '"service":"env-service"' in line and f'"trace_id":"{span.trace_id}"' in line
    assert '"answer":42' in line


def test_sdk_disabled_exports_nothing() -> None:
    with OtlpReceiver() as receiver:
        result = run_script(
            {
                "OTEL_SERVICE_NAME": "off",
                "OTEL_SDK_DISABLED": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_endpoint,
            }
        )
    assert result.returncode == 0, result.stderr  # user code keeps working with a no-op tracer
    line = next(ln for ln in result.stdout.splitlines() if '"inside"' in ln)
    assert "trace_id" not in line
    assert receiver.spans == []


def test_bad_environment_value_names_the_variable() -> None:
    result = run_script({"OTEL_TRACES_SAMPLER": "sometimes"})
    assert result.returncode != 0
    assert "OTEL_TRACES_SAMPLER: 'sometimes' is not one of" in result.stderr


def test_init_twice_replaces_the_first_handle() -> None:
    script = textwrap.dedent(
        """
        import telemetry
        from prometheus_client import REGISTRY
        first = telemetry.init(service_name="one", metrics_port=None, traces_exporter="none")
        second = telemetry.init(service_name="two", metrics_port=None, traces_exporter="none")
        assert telemetry.current() is second and first._is_shut_down
        names = {m.name for m in REGISTRY.collect()}
        assert "grpc_server_started" in names and "telemetry_log_lines_dropped" in names
        print("OK")
        """
    )
    result = run_script({}, script)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr


def test_console_exporter_writes_spans_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    tel = telemetry.Telemetry(make_config("console", traces_exporter="console"))
    with tel.tracer.start_as_current_span("handler work") as span:
        span.set_attribute("rows", 3)
    assert tel.force_flush(5)
    tel.shutdown()
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if '"handler work"' in ln]
    record = json.loads(line)
    assert record["service_name"] == "console" and record["attributes"] == {"rows": 3}
