"""Public test helpers: span and log capture, a fake clock, an OTLP receiver and free ports."""

from telemetry.testing.clock import FakeClock
from telemetry.testing.logs import LogCapture, capture_logs
from telemetry.testing.otlp_receiver import OtlpReceiver
from telemetry.testing.ports import free_port
from telemetry.testing.spans import SpanCapture
from telemetry.tracing.otlp_decoding import ReceivedSpan

__all__ = [
    "FakeClock",
    "LogCapture",
    "OtlpReceiver",
    "ReceivedSpan",
    "SpanCapture",
    "capture_logs",
    "free_port",
]
