"""A second ``telemetry.init`` in one process (a test suite, a reload) makes its handle the global
OpenTelemetry tracer provider. The OpenTelemetry API lets the global provider be set once and keeps
the first ("Overriding of current TracerProvider is not allowed"), so ``init`` clears the API's
set-once flag: this test is why (see ``process._set_global_tracer_provider``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import io

    from opentelemetry import trace

    import telemetry

    def init(name):
        return telemetry.init(
            service_name=name, traces_exporter="none", log_stream=io.StringIO(), metrics_port=None
        )

    first = init("first")
    assert trace.get_tracer_provider() is first.tracer_provider
    second = init("second")
    assert trace.get_tracer_provider() is second.tracer_provider, "still the first handle's"
    with trace.get_tracer("app").start_as_current_span("work") as span:
        assert span.resource.attributes["service.name"] == "second"
    print("OK")
    """
)


def test_a_second_init_installs_its_tracer_provider_globally() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_"))}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr
