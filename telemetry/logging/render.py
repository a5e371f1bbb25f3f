"""Render event dicts as JSON lines (production) or coloured console lines (development)."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

# The keys every line starts with, in this order.
FIRST_KEYS = ("timestamp", "level", "service", "event", "trace_id", "span_id")


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")  # the last second formatted, and its text


def iso_time(ts: float) -> str:
    """``ts`` (seconds since the epoch) as ISO 8601 UTC with milliseconds,
    ``2026-11-22T06:51:58.544+00:00``; the date and time of day are formatted once per second."""
    global _second
    whole = math.floor(ts)
    micros = round((ts - whole) * 1e6)  # rounded to microseconds first, as datetime does
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    cached = _second
    if cached[0] == whole:
        text = cached[1]
    else:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)  # one assignment: threads see the old pair or the new one
    return f"{text}.{micros // 1000:03d}+00:00"


def _iso(ts: Any) -> Any:
    if isinstance(ts, float | int):
        return iso_time(ts)
    return ts


def render_json(event: dict[str, Any]) -> str:
    ordered = {key: event[key] for key in FIRST_KEYS if key in event}
    if "timestamp" in ordered:
        ordered["timestamp"] = _iso(ordered["timestamp"])
    for key, value in event.items():
        if key not in ordered:
            ordered[key] = value
    return orjson.dumps(ordered, default=repr).decode()


def render_console(event: dict[str, Any]) -> str:
    rest = {k: v for k, v in event.items() if k not in FIRST_KEYS and k != "exception"}
    head = (
        f"{_iso(event.get('timestamp', ''))} {str(event.get('level', '')).upper():<7} "
        f"[{event.get('service', '-')}] {event.get('event', '')}"
    )
    tail = " ".join(f"{k}={v!r}" for k, v in rest.items())
    trace = f" trace_id={event['trace_id']}" if "trace_id" in event else ""
    line = f"{head} {tail}{trace}".rstrip()
    if "exception" in event:
        line += "\n" + str(event["exception"])
    return line
