"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry

import telemetry


def make_config(name: str, **overrides: Any) -> telemetry.TelemetryConfig:
    """A config for in-process test services: no metrics port, spans only to the capture."""
    settings: dict[str, Any] = {"metrics_port": None, "traces_exporter": "none"}
    settings.update(overrides)
    return telemetry.TelemetryConfig(service_name=name, **settings)


def metric_value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def wait_until(condition: Any, timeout: float = 10.0, message: str = "condition") -> None:
    """Poll ``condition()`` until true; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(0.01)
