"""Render event dicts as JSON lines (production) or coloured console lines (development)."""

from __future__ import annotations

import datetime
from typing import Any

import orjson

_FIRST = ("timestamp", "level", "service", "event", "trace_id", "span_id")


def _iso(ts: Any) -> Any:
    if isinstance(ts, float | int):
        return datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat(timespec="milliseconds")
    return ts


def render_json(event: dict[str, Any]) -> str:
    ordered = {key: event[key] for key in _FIRST if key in event}
    if "timestamp" in ordered:
        ordered["timestamp"] = _iso(ordered["timestamp"])
    for key, value in event.items():
        if key not in ordered:
            ordered[key] = value
    return orjson.dumps(ordered, default=repr).decode()


def render_console(event: dict[str, Any]) -> str:
    rest = {k: v for k, v in event.items() if k not in _FIRST and k != "exception"}
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
