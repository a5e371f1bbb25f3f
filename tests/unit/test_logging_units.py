"""Log rendering and the bounded writer, without gRPC."""

from __future__ import annotations

import io
import json

from telemetry.logging.render import render_console, render_json
from telemetry.logging.writer import AsyncLineWriter


def test_json_puts_the_important_fields_first() -> None:
    line = render_json(
        {
            "x": 1,
            "event": "e",
            "level": "info",
            "timestamp": 0.0,
            "service": "s",
            "span_id": "b" * 16,
            "trace_id": "a" * 32,
        }
    )
    assert list(json.loads(line)) == [
        "timestamp",
        "level",
        "service",
        "event",
        "trace_id",
        "span_id",
        "x",
    ]
    assert json.loads(line)["timestamp"] == "1970-01-01T00:00:00.000+00:00"


def test_json_renders_unserialisable_values() -> None:
    assert json.loads(render_json({"event": "e", "obj": object()}))["obj"].startswith("<object")


def test_console_rendering_is_readable() -> None:
    line = render_console(
        {
            "timestamp": 0.0,
            "level": "warning",
            "service": "s",
            "event": "hi",
            "k": 1,
            "trace_id": "t",
            "exception": "Traceback...",
        }
    )
    assert "WARNING" in line and "[s] hi k=1 trace_id=t" in line and line.endswith("Traceback...")


def test_writer_writes_everything_and_flushes() -> None:
    stream = io.StringIO()
    writer = AsyncLineWriter(stream, render_json, capacity=1000)
    for i in range(500):
        writer({"event": "n", "i": i})
    assert writer.flush(5)
    assert [json.loads(x)["i"] for x in stream.getvalue().splitlines()] == list(range(500))
    writer.close()


def test_writer_survives_a_broken_stream_and_bad_values() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("closed")

    writer = AsyncLineWriter(Broken(), render_json)
    writer({"event": "x"})
    assert writer.flush(5)
    assert writer.write_errors == 1
    writer.close()
    writer({"event": "after close"})
    assert writer.dropped == 1
